with source as (

    select * from {{ ref('raw_payments') }}

),

renamed as (

    select
        payment_id,
        order_id,
        payment_method,
        amount_cents,
        {{ cents_to_dollars('amount_cents') }} as amount

    from source

)

select * from renamed
