"""The dashboard's entry script: `streamlit run dashboard/app.py` (`stocklake dashboard`)."""

import sys
from pathlib import Path

# `streamlit run` puts only this folder on sys.path: make `dashboard` importable too.
ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import streamlit as st  # noqa: E402

from dashboard import ui  # noqa: E402

PAGES = (
    ("views/overview.py", "Market overview", ":material/monitoring:"),
    ("views/symbol.py", "Symbol", ":material/candlestick_chart:"),
    ("views/realtime.py", "Real time", ":material/timer:"),
    ("views/pipeline.py", "Pipeline", ":material/account_tree:"),
)


def main() -> None:
    st.set_page_config(page_title="stocklake", page_icon=":material/monitoring:", layout="wide")
    pages = [
        st.Page(path, title=title, icon=icon, default=index == 0)
        for index, (path, title, icon) in enumerate(PAGES)
    ]
    navigation = st.navigation(pages)
    ui.sidebar(ui.settings())
    navigation.run()


main()
