-- Sales fact at order-line grain: each line with its order's date, customer, status
-- and channel, and its product's current category. Amounts are exact decimals:
-- line_amount = quantity * unit_price, net_amount = line_amount - discount_amount.
-- Lines whose order or product is not in silver are left out (inner joins).
SELECT
    l.order_id,
    l.line_number,
    o.order_date,
    o.customer_id,
    l.product_id,
    p.category AS product_category,
    o.order_status,
    o.sales_channel,
    l.quantity,
    l.unit_price,
    CAST(l.quantity * l.unit_price AS DECIMAL(14, 2)) AS line_amount,
    l.discount_amount,
    CAST(l.quantity * l.unit_price - l.discount_amount AS DECIMAL(14, 2)) AS net_amount
FROM {{ silver.order_lines }} AS l
INNER JOIN {{ silver.orders }} AS o
    ON o.order_id = l.order_id
INNER JOIN {{ silver.products }} AS p
    ON p.product_id = l.product_id
