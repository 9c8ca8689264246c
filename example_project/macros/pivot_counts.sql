{#
    Emits one "sum(case when ... then 1 else 0 end) as <value>_count" column
    per value, comma separated (no trailing comma).
    Usage: {{ pivot_counts('status', ['placed', 'shipped']) }}
#}
{% macro pivot_counts(column_name, values, suffix='_count') -%}
    {%- for value in values -%}
        sum(case when {{ column_name }} = '{{ value }}' then 1 else 0 end) as {{ value }}{{ suffix }}
        {%- if not loop.last %},
        {% endif -%}
    {%- endfor -%}
{%- endmacro %}
