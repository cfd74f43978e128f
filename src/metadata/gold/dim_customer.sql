-- Customer dimension: one row per customer, current version (SCD type 1).
SELECT
    c.customer_id,
    c.first_name,
    c.last_name,
    concat_ws(' ', c.first_name, c.last_name) AS full_name,
    c.email,
    c.city,
    c.country_code,
    c.loyalty_tier,
    c.signup_date
FROM {{ silver.customers }} AS c
