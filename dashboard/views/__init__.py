"""The dashboard's pages: each file is one `st.Page`, run as a script by Streamlit."""
