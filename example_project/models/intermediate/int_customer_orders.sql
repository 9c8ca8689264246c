{% set order_statuses = ['placed', 'shipped', 'completed', 'returned', 'return_pending'] %}

with orders as (

    select * from {{ ref('stg_orders') }}

),

payments as (

    select * from {{ ref('stg_payments') }}

),

order_payments as (

    select
        order_id,
        sum(amount) as order_amount

    from payments

    group by order_id

),

customer_orders as (

    select
        orders.customer_id,
        count(orders.order_id) as order_count,
        {{ pivot_counts('orders.status', order_statuses) }},
        min(orders.order_date) as first_order_date,
        max(orders.order_date) as last_order_date,
        round(
            sum(
                case
                    when orders.is_revenue = 1 then coalesce(order_payments.order_amount, 0)
                    else 0
                end
            ),
            2
        ) as lifetime_value

    from orders

    left join order_payments
        on orders.order_id = order_payments.order_id

    group by orders.customer_id

)

select * from customer_orders
