"""Drift check speed: 17,500 rows x 2 features against a reference of the same size (bundled ERCOT data).

Times `ForecastMonitor.run_data_drift` with the HTML report and summary-only (plain and seasonal), and, as the
baseline in the same process, Evidently's own data drift preset run directly and saved as HTML (what the public
library does). Medians of several runs after one warm-up call; the warm-up (which imports Evidently) is reported too.
"""
import tempfile
import time

from bench._timing import median_time

N_ROWS, FEATURES = 17_500, ["temperature_c", "ghi_wm2"]


def _median(fn, n): return median_time(lambda _: fn(), n)[0]


def _evidently_direct(reference, current, path):
    "Evidently 0.7's data drift preset with its defaults, saved as HTML: the baseline."
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    dd = DataDefinition(numerical_columns=FEATURES)
    snap = Report([DataDriftPreset()]).run(Dataset.from_pandas(current[FEATURES], data_definition=dd),
                                           Dataset.from_pandas(reference[FEATURES], data_definition=dd))
    snap.save_html(path)


def main(repeats: int = 3, summary_repeats: int = 7) -> dict:
    t0 = time.perf_counter()
    from twiga.monitoring import ForecastMonitor  # pandas, scipy.stats; not Evidently
    import_s = time.perf_counter() - t0
    from twiga.datasets import load_ercot

    data = load_ercot()
    reference = data.iloc[:N_ROWS].reset_index(drop=True)
    current = data.iloc[N_ROWS:2 * N_ROWS].reset_index(drop=True)
    with tempfile.TemporaryDirectory() as d:
        plain = ForecastMonitor(d, "demand_mwh", "prediction").set_reference(reference)
        seasonal = ForecastMonitor(d, "demand_mwh", "prediction", seasonal=True)
        t0 = time.perf_counter()
        _, first = plain.run_data_drift(current, feature_cols=FEATURES, html=True)
        first_html_s = time.perf_counter() - t0  # includes importing Evidently
        html_s = _median(lambda: plain.run_data_drift(current, feature_cols=FEATURES, html=True), repeats)
        summary_s = _median(lambda: plain.run_data_drift(current, feature_cols=FEATURES, html=False), summary_repeats)
        seasonal.run_data_drift(current, feature_cols=FEATURES, html=False)  # warm the reference-side memo
        seasonal_summary_s = _median(lambda: seasonal.run_data_drift(current, feature_cols=FEATURES, html=False),
                                     summary_repeats)
        seasonal_html_s = _median(lambda: seasonal.run_data_drift(current, feature_cols=FEATURES, html=True), repeats)
        baseline_s = _median(lambda: _evidently_direct(reference, current, f"{d}/baseline.html"), repeats)
    return {
        "rows_reference": N_ROWS, "rows_current": N_ROWS, "features": FEATURES,
        "import_twiga_monitoring_s_in_process": round(import_s, 4),
        "first_html_check_s_incl_evidently_import": round(first_html_s, 3),
        "html_check_median_s": round(html_s, 4),
        "summary_only_median_s": round(summary_s, 4),
        "seasonal_summary_only_median_s": round(seasonal_summary_s, 4),
        "seasonal_html_check_median_s": round(seasonal_html_s, 4),
        "baseline_evidently_preset_html_median_s": round(baseline_s, 4),
        "html_check_vs_baseline": round(html_s / baseline_s, 3),
        "summary_only_vs_baseline": round(summary_s / baseline_s, 4),
        "public_library_reference_s": 0.86,
        "goals": {"html_check_s_max": 0.86, "summary_only_s_max": 0.1},
        "drift_detected": first["drift_detected"], "feature_drift": first["feature_drift"],
    }
