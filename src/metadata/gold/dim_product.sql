-- Product dimension: one row per SKU, current catalogue version (SCD type 1).
SELECT
    p.product_id,
    p.product_name,
    p.category,
    p.brand,
    p.list_price,
    p.is_active
FROM {{ silver.products }} AS p
