//! The fuzz targets in the normal suite: every seed (`fuzz/seeds/<target>/`) and every input a
//! fuzzer crashed on (`fuzz/regressions/<target>/`, kept once fixed) replayed through the
//! target's checks. A crash `scripts/fuzz.sh` finds is copied there and becomes a test here.

use std::path::Path;

#[test]
fn every_seed_and_every_past_crash_passes_its_fuzz_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut replayed = 0;
    for (target, check) in fuzz::TARGETS {
        for folder in ["seeds", "regressions"] {
            let dir = root.join(folder).join(target);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let outcome = std::panic::catch_unwind(|| check(&data));
                assert!(outcome.is_ok(), "{target}: {} fails", path.display());
                replayed += 1;
            }
        }
    }
    assert!(replayed >= 12, "only {replayed} inputs replayed");
    // The shipped workflows are the definition target's seeds too.
    for entry in std::fs::read_dir(root.join("../scheduler/workflows")).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        fuzz::asl_definition(&data);
    }
}
