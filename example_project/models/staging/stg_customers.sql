with source as (

    select * from {{ ref('raw_customers') }}

),

renamed as (

    select
        customer_id,
        first_name,
        last_name,
        lower(email) as email,
        phone,
        upper(country) as country,
        signup_date,
        marketing_opt_in

    from source

)

select * from renamed
