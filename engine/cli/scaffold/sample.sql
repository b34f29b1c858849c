-- Sample data for the demo project: 200 customers and their orders.
CREATE SCHEMA IF NOT EXISTS analytics;
CREATE OR REPLACE TABLE analytics.customers AS
SELECT i AS customer_id,
       'customer' || i || '@example.com' AS email,
       ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Ken'][1 + i % 8] AS first_name,
       ['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth', 'Allen', 'Thompson'][1 + (i * 7) % 8] AS last_name,
       CASE WHEN i % 4 = 0 THEN 'lead' ELSE 'customer' END AS lifecycle_stage,
       TIMESTAMP '2026-01-01' + INTERVAL (i) DAY AS created_at
FROM range(1, 201) t(i);
CREATE OR REPLACE TABLE analytics.orders AS
SELECT 1000 + i AS order_id,
       1 + (i * 37) % 200 AS customer_id,
       round(10 + (i * 7919) % 500 + ((i * 31) % 100) / 100.0, 2) AS amount,
       TIMESTAMP '2026-10-01' + INTERVAL (i % 30) DAY AS ordered_at
FROM range(1, 601) t(i);
