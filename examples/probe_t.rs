use statrs::distribution::{ContinuousCDF, StudentsT};
fn main() {
    let t = std::time::Instant::now();
    let mut s = 0.0;
    for k in 0..20000 {
        let d = StudentsT::new(0.0, 1.0, 20.0 + (k % 100) as f64 * 0.37).unwrap();
        s += d.inverse_cdf(0.975);
    }
    println!(
        "inverse_cdf {:.2} µs ({s})",
        t.elapsed().as_secs_f64() / 20000.0 * 1e6
    );
    let t = std::time::Instant::now();
    for k in 0..20000 {
        let d = StudentsT::new(0.0, 1.0, 20.0 + (k % 100) as f64 * 0.37).unwrap();
        s += d.sf(2.1);
    }
    println!(
        "sf {:.2} µs ({s})",
        t.elapsed().as_secs_f64() / 20000.0 * 1e6
    );
}
