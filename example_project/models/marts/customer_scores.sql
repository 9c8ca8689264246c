{{ config(materialized='table', tags=['crm']) }}

{% set as_of_date = "'" ~ var('as_of_date') ~ "'" %}
{% set churn_window = var('churn_window_days') %}

with customers as (

    select * from {{ ref('stg_customers') }}

),

customer_orders as (

    select * from {{ ref('int_customer_orders') }}

),

customer_activity as (

    select * from {{ ref('int_customer_activity') }}

),

joined as (

    select
        customers.customer_id,
        customers.email,
        customers.phone,
        customers.first_name,
        customers.last_name,
        customers.country,
        customers.signup_date,
        customers.marketing_opt_in,
        coalesce(customer_orders.order_count, 0) as order_count,
        coalesce(customer_orders.lifetime_value, 0) as lifetime_value,
        customer_orders.last_order_date,
        {{ days_between(as_of_date, 'customer_orders.last_order_date') }} as days_since_last_order,
        {{ days_between(as_of_date, 'customers.signup_date') }} as days_since_signup,
        coalesce(customer_activity.recent_event_count, 0) as recent_event_count

    from customers

    left join customer_orders
        on customers.customer_id = customer_orders.customer_id

    left join customer_activity
        on customers.customer_id = customer_activity.customer_id

),

recency as (

    select
        joined.*,
        -- 0 right after an order, 1 at twice the churn window or with no orders at all
        case
            when days_since_last_order is null then 1.0
            when days_since_last_order >= {{ churn_window * 2 }} then 1.0
            else days_since_last_order / (2.0 * {{ churn_window }})
        end as recency_risk,
        -- recent browsing lowers the risk
        case
            when recent_event_count >= 5 then 0.3
            when recent_event_count >= 1 then 0.15
            else 0.0
        end as activity_credit

    from joined

),

scored as (

    select
        recency.*,
        round(
            case
                when recency_risk - activity_credit < 0 then 0.0
                else recency_risk - activity_credit
            end,
            2
        ) as churn_risk_score

    from recency

),

final as (

    select
        customer_id,
        email,
        phone,
        first_name,
        last_name,
        country,
        signup_date,
        order_count,
        lifetime_value,
        last_order_date,
        days_since_last_order,
        recent_event_count,
        churn_risk_score,
        case
            when lifetime_value >= {{ var('high_value_threshold') }} then 'vip'
            when days_since_signup <= {{ churn_window }} then 'new'
            when order_count = 0 then 'dormant'
            when days_since_last_order > {{ churn_window * 2 }} then 'dormant'
            when days_since_last_order > {{ churn_window }} or churn_risk_score >= 0.6 then 'at_risk'
            else 'active'
        end as segment,
        marketing_opt_in

    from scored

)

select * from final
