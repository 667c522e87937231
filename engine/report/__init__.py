"""HTML reports: one self-contained file per run or per store (see engine.report.html)."""

from engine.report.html import render_run_report, render_store_report, report_filename

__all__ = ["render_run_report", "render_store_report", "report_filename"]
