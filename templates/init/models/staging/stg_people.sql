with source as (

    select * from {{ ref('people') }}

),

renamed as (

    select
        person_id,
        first_name,
        last_name,
        lower(email) as email,
        age,
        city

    from source

)

select * from renamed
