//! The native history: one [`Event`] per line (DESIGN.md §1). Blank lines are skipped.

use super::text::LineError;
use crate::history::{Builder, Event, History};

pub(crate) fn read_jsonl(text: &str) -> Result<History, LineError> {
    use rayon::prelude::*;
    let lines: Vec<&str> = text.lines().collect();
    // Parse lines in parallel (the bulk of the work for big histories), validate in order.
    let parsed: Vec<Result<Option<Event>, LineError>> = lines
        .par_iter()
        .enumerate()
        .map(|(i, line)| {
            if line.trim().is_empty() {
                return Ok(None);
            }
            serde_json::from_str::<Event>(line).map(Some).map_err(|e| {
                (
                    i + 1,
                    format!(
                        "{e} (expected one JSON event per line: {{\"index\",\"time\",\"process\",\
                         \"type\",\"f\",\"key\"?,\"value\"}})"
                    ),
                )
            })
        })
        .collect();
    let mut b = Builder::new();
    // The first bad line in file order is reported.
    for (i, ev) in parsed.into_iter().enumerate() {
        if let Some(ev) = ev? {
            b.push(ev, i + 1).map_err(|e| (i + 1, e.message))?;
        }
    }
    Ok(b.finish())
}
