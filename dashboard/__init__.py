"""The stocklake dashboard: Streamlit pages with plotly charts, reading only the warehouse.

`queries` holds every SQL statement (portable: PostgreSQL and Snowflake) and runs them
through the loaders' public `run_query`; `charts` builds plotly figures from DataFrames
(pure functions); `views/` holds the thin pages; `app.py` is the script
`stocklake dashboard` hands to `streamlit run`.
"""
