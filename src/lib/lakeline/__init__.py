"""lakeline."""
