{% set as_of_date = "'" ~ var('as_of_date') ~ "'" %}
{% set recent_days = var('recent_activity_days', 30) %}

with events as (

    select * from {{ ref('stg_web_events') }}

),

customer_activity as (

    select
        customer_id,
        count(event_id) as event_count,
        {{ pivot_counts('event_type', ['page_view', 'add_to_cart', 'checkout', 'search']) }},
        sum(
            case
                when {{ days_between(as_of_date, 'event_at') }} <= {{ recent_days }} then 1
                else 0
            end
        ) as recent_event_count,
        min(event_at) as first_seen_at,
        max(event_at) as last_seen_at

    from events

    where customer_id is not null

    group by customer_id

)

select * from customer_activity
