with source as (

    select * from {{ source('web', 'events') }}

),

renamed as (

    select
        event_id,
        customer_id,
        event_type,
        event_at,
        page

    from source

)

select * from renamed
