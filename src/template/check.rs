//! A template as mettaton reads it: what the API server cannot check is
//! checked here, pure, so that every reader (`mettaton template import` and
//! `template check` now; the controller and the swarm CLI when GameServers
//! name templates) refuses the same templates. The CRD cannot run Laravel
//! rules, so a variable's `rules` are read here ([`Rules::parse_str`]), and a
//! rule mettaton does not know refuses the template, naming the variable and
//! the rule; the ready lines' patterns and the stop are read as the
//! supervisor will read them.

use mettaton_supervisor::{Pattern, Stop};

use super::rules::Rules;
use crate::api::GameTemplateSpec;

/// A template's variables with their rules, read.
#[derive(Clone, Debug)]
pub struct Checked {
    /// Each variable's `env` and rules, in the template's order.
    pub rules: Vec<(String, Rules)>,
}

/// Reads what the API server does not check; every problem names its field
/// (`spec.variables[SERVER_JARFILE].rules: rule ...`).
pub fn check(spec: &GameTemplateSpec) -> Result<Checked, Vec<String>> {
    let mut problems = Vec::new();
    let mut rules = Vec::new();
    for v in &spec.variables {
        match Rules::parse_str(&v.rules) {
            Ok(r) => rules.push((v.env.clone(), r)),
            Err(e) => problems.push(format!("spec.variables[{}].rules: {e}", v.env)),
        }
    }
    for (i, line) in spec.ready_log_line.iter().enumerate() {
        if let Err(e) = Pattern::parse(line) {
            problems.push(format!("spec.readyLogLine[{i}]: {e}"));
        }
    }
    if let Some(Err(e)) = spec.stop.as_deref().map(Stop::parse) {
        problems.push(format!("spec.stop: {e}"));
    }
    if problems.is_empty() { Ok(Checked { rules }) } else { Err(problems) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{StartupCommand, TemplateImage, TemplateVariable};

    fn spec(rules: &[(&str, &str)]) -> GameTemplateSpec {
        GameTemplateSpec {
            game: "Game".into(),
            description: None,
            images: vec![TemplateImage { name: "a".into(), image: "game:1".into() }],
            startup: vec![StartupCommand { name: "Default".into(), command: "./game".into() }],
            variables: rules
                .iter()
                .map(|(env, rules)| TemplateVariable {
                    env: env.to_string(),
                    title: String::new(),
                    description: String::new(),
                    default: String::new(),
                    user_editable: true,
                    user_viewable: true,
                    rules: rules.to_string(),
                })
                .collect(),
            config_files: Vec::new(),
            ready_log_line: Vec::new(),
            stop: None,
            ports: Vec::new(),
            files_path: crate::api::DEFAULT_FILES_PATH.into(),
            install: None,
            source: None,
        }
    }

    #[test]
    fn an_unknown_rule_refuses_the_template_naming_the_variable_and_the_rule() {
        let problems =
            check(&spec(&[("PORT", "required|numeric"), ("NAME", "required|sometimes|max:20")])).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0]
                .starts_with("spec.variables[NAME].rules: rule `sometimes`: `sometimes` is not a rule mettaton knows"),
            "{}",
            problems[0]
        );
        let problems = check(&spec(&[("A", "max:lots"), ("B", "regex:/(?=x)/")])).unwrap_err();
        assert!(problems[0].starts_with("spec.variables[A].rules: rule `max:lots`"), "{problems:?}");
        assert!(problems[1].starts_with("spec.variables[B].rules: rule `regex:/(?=x)/`"), "{problems:?}");
    }

    #[test]
    fn known_rules_are_read_and_check_values() {
        let checked = check(&spec(&[("PORT", "required|integer|between:1,65535"), ("FREE", "")])).unwrap();
        let (env, rules) = &checked.rules[0];
        assert_eq!(env, "PORT");
        assert_eq!(rules.check("25565"), Ok(()));
        assert_eq!(rules.check("70000").unwrap_err().rule, "between:1,65535");
        assert_eq!(checked.rules[1].1.check("anything"), Ok(()));
    }

    #[test]
    fn bad_ready_lines_and_stops_are_named() {
        let mut s = spec(&[]);
        s.ready_log_line = vec!["Done (".into(), "regex:(".into()];
        s.stop = Some("SIGNOPE".into());
        let problems = check(&s).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("spec.readyLogLine[1]: "), "{problems:?}");
        assert!(problems[1].starts_with("spec.stop: "), "{problems:?}");
        s.ready_log_line.pop();
        s.stop = Some("^C".into());
        assert!(check(&s).is_ok());
    }
}
