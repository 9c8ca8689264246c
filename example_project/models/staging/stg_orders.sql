with source as (

    select * from {{ ref('raw_orders') }}

),

renamed as (

    select
        order_id,
        customer_id,
        order_date,
        status,
        store_id,
        case
            when status in ('shipped', 'completed') then 1
            else 0
        end as is_revenue

    from source

)

select * from renamed
