with people as (

    select * from {{ ref('stg_people') }}

),

summary as (

    select
        city,
        count(person_id) as person_count,
        sum(case when age >= {{ var('adult_age', 18) }} then 1 else 0 end) as adult_count,
        min(age) as min_age,
        max(age) as max_age

    from people

    group by city

)

select * from summary
