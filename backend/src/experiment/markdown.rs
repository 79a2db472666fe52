//! The report as files: `report.md` (tables beside the paper's figures),
//! `report.json` (the API's `ExperimentReport`) and one SVG and CSV per chart.

use crate::{Error, Result};
use kn_shared::charts::report_charts;
use kn_shared::experiment::{markdown, ExperimentReport};
use std::path::{Path, PathBuf};

/// Write `report.md`, `report.json` and the charts into `dir`.
pub fn write(r: &ExperimentReport, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut files = vec![
        (dir.join("report.md"), markdown(r)),
        (
            dir.join("report.json"),
            serde_json::to_string_pretty(r).map_err(|e| Error::Store(e.to_string()))?,
        ),
    ];
    for ch in report_charts(r) {
        files.push((dir.join(format!("{}.svg", ch.name)), ch.svg));
        files.push((dir.join(format!("{}.csv", ch.name)), ch.csv));
    }
    for (p, content) in &files {
        std::fs::write(p, content).map_err(|e| Error::io(p, e))?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}
