{#
    Returns a SQL expression for the number of days from start_date to end_date
    (end_date - start_date), in the dialect of the active target.
    Both arguments are SQL expressions, e.g. a column name or a quoted literal.
#}
{% macro days_between(end_date, start_date) %}
    {%- if target.type == 'sqlite' -%}
        {{ return('(julianday(' ~ end_date ~ ') - julianday(' ~ start_date ~ '))') }}
    {%- elif target.type == 'postgres' -%}
        {{ return('(' ~ end_date ~ '::date - ' ~ start_date ~ '::date)') }}
    {%- elif target.type == 'mysql' -%}
        {{ return('datediff(' ~ end_date ~ ', ' ~ start_date ~ ')') }}
    {%- else -%}
        {{ return('(cast(' ~ end_date ~ ' as date) - cast(' ~ start_date ~ ' as date))') }}
    {%- endif -%}
{% endmacro %}
