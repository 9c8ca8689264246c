-- Lifetime value is a sum of payments on revenue orders, so it can never be negative.
select *
from {{ ref('customer_scores') }}
where lifetime_value < 0
