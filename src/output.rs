//! Writers for simulated data. CSV follows R's conventions: a header row,
//! `NA` for a missing value, identifiers numbered from 1.

use crate::design::Design;
use crate::simulate::Dataset;
use std::io::{self, Write};

/// Column names of a simulated-trial CSV, in order.
pub const COLUMNS: [&str; 9] = [
    "site",
    "team",
    "staff",
    "user",
    "arm",
    "adherence",
    "baseline",
    "qpr",
    "team_adherence",
];

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
