//! Step Functions' rules for execution names.

use super::Error;

/// Step Functions' rules for an execution name: 1 to 80 characters, none of them whitespace,
/// a bracket, a wildcard, a control character or one of `" # % \ ^ | ~ ` $ & , ; : /`.
pub fn check_name(name: &str) -> Result<(), Error> {
    let count = name.chars().count();
    if count == 0 || count > 80 {
        return Err(Error::Invalid(format!(
            "execution name {name:?}: 1 to 80 characters, not {count}"
        )));
    }
    if let Some(c) = name.chars().find(|c| {
        c.is_whitespace()
            || c.is_control()
            || ('\u{7f}'..='\u{9f}').contains(c)
            || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(*c)
    }) {
        return Err(Error::Invalid(format!(
            "execution name {name:?}: {c:?} is not allowed (no whitespace, brackets, wildcards, control characters or \" # % \\ ^ | ~ ` $ & , ; : /)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn execution_names_follow_step_functions_rules() {
        for good in [
            "nightly@2024-05-30T00-00-00Z",
            "run-1",
            "a_b.c",
            &"x".repeat(80),
        ] {
            assert!(super::check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a b",
            "a/b",
            "a:b",
            "a*",
            "{x}",
            "tab\t",
            "\u{85}",
            &"x".repeat(81),
        ] {
            assert!(super::check_name(bad).is_err(), "{bad:?}");
        }
    }
}
