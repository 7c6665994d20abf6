//! Writers for simulated data. CSV follows R's conventions: a header row,
//! `NA` for a missing value, identifiers numbered from 1.

use crate::design::Design;
use crate::simulate::Dataset;
use std::io::{self, Write};

pub use crate::simulate::COLUMNS;

/// Write one row per service user: site, team, staff, user, arm, adherence
/// (of the user's staff member), baseline, qpr, team_adherence (the team's
/// participation).
pub fn write_csv<W: Write>(d: &Dataset, design: &Design, mut w: W) -> io::Result<()> {
    writeln!(w, "{}", COLUMNS.join(","))?;
    for i in 0..d.len() {
        write_field(&mut w, &design.site_names[d.site[i] as usize])?;
        write!(
            w,
            ",{},{},{},{},",
            d.team[i] + 1,
            d.staff[i] + 1,
            i + 1,
            d.arm[i]
        )?;
        write_num(&mut w, d.adherence[i])?;
        w.write_all(b",")?;
        write_num(&mut w, d.baseline[i])?;
        w.write_all(b",")?;
        write_num(&mut w, d.qpr[i])?;
        w.write_all(b",")?;
        write_num(&mut w, d.team_adherence[i])?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

fn write_num<W: Write>(w: &mut W, x: f64) -> io::Result<()> {
    if x.is_nan() {
        w.write_all(b"NA")
    } else {
        // Shortest representation that round-trips; integers print bare.
        write!(w, "{x}")
    }
}

fn write_field<W: Write>(w: &mut W, s: &str) -> io::Result<()> {
    if s.contains([',', '"', '\n', '\r']) {
        write!(w, "\"{}\"", s.replace('"', "\"\""))
    } else {
        w.write_all(s.as_bytes())
    }
}

/// Column names of a simulated stepped-wedge CSV, in order.
pub const SW_COLUMNS: [&str; 8] = [
    "cluster",
    "period",
    "sequence",
    "exposure",
    "time_since_crossover",
    "individual",
    "treat",
    "qpr",
];

/// Write a stepped-wedge trial: one row per individual and period. `cluster`
/// C1.., `period` t1.., `sequence` 1.., `exposure` (1, 0.5 in a half
/// transition period, 0), `time_since_crossover` (0 in the first exposed
/// period, NA before), `individual` (within cluster; the same person across
/// periods in a cohort), `treat` (1 if exposed), `qpr`.
///
/// With `participation` (an adherence model), a `team_adherence` column
/// follows `treat`: the cluster's participation once it has crossed over, 0
/// before (the column `crtsim adherence` and `plot adherence` read).
pub fn write_sw_csv<W: Write>(d: &Dataset, participation: bool, mut w: W) -> io::Result<()> {
    let mut header = SW_COLUMNS.join(",");
    if participation {
        header = header.replace(",treat,", ",treat,team_adherence,");
    }
    writeln!(w, "{header}")?;
    for i in 0..d.len() {
        let c = d.team[i] as usize;
        write!(
            w,
            "C{},t{},{},",
            c + 1,
            d.period[i] + 1,
            d.team_sequence.get(c).map(|q| q + 1).unwrap_or(0)
        )?;
        write_num(&mut w, d.exposure[i])?;
        if d.time_since[i] < 0 {
            write!(w, ",NA,")?;
        } else {
            write!(w, ",{},", d.time_since[i])?;
        }
        write!(w, "{},{},", d.staff[i] + 1, d.arm[i])?;
        if participation {
            write_num(&mut w, d.team_adherence[i])?;
            w.write_all(b",")?;
        }
        write_num(&mut w, d.qpr[i])?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

/// Write a simulated trial as CSV, whatever its design (parallel or stepped
/// wedge).
pub fn write_trial<W: Write>(
    sim: &crate::simulate::Simulator,
    d: &Dataset,
    w: W,
) -> io::Result<()> {
    if sim.is_stepped_wedge() {
        write_sw_csv(d, sim.adherence().is_active(), w)
    } else {
        write_csv(d, sim.design(), w)
    }
}
