{{ config(alias='account_rollup') }}

{% set segments = ['vip', 'active', 'at_risk', 'new', 'dormant'] %}

with scores as (

    select * from {{ ref('customer_scores') }}

),

accounts as (

    select
        country as account_id,
        case country
            when 'US' then 'United States'
            when 'CA' then 'Canada'
            when 'GB' then 'United Kingdom'
            when 'DE' then 'Germany'
            when 'FR' then 'France'
            when 'AU' then 'Australia'
            when 'NL' then 'Netherlands'
            else country
        end as account_name,
        count(customer_id) as customer_count,
        sum(order_count) as order_count,
        round(sum(lifetime_value), 2) as total_revenue,
        {{ pivot_counts('segment', segments) }},
        round(avg(churn_risk_score), 2) as avg_churn_risk_score

    from scores

    group by country

)

select * from accounts
