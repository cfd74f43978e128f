-- Daily sales per product category, from the order-line fact. Cancelled orders do
-- not count as sales; returned orders still do (refunds are booked elsewhere).
SELECT
    f.order_date,
    f.product_category,
    COUNT(DISTINCT f.order_id) AS order_count,
    CAST(SUM(f.quantity) AS BIGINT) AS units_sold,
    CAST(SUM(f.line_amount) AS DECIMAL(18, 2)) AS gross_amount,
    CAST(SUM(f.discount_amount) AS DECIMAL(18, 2)) AS discount_amount,
    CAST(SUM(f.net_amount) AS DECIMAL(18, 2)) AS net_amount
FROM {{ gold.fct_order_lines }} AS f
WHERE f.order_status <> 'cancelled'
GROUP BY f.order_date, f.product_category
