use proptest::prelude::*;

use super::*;

fn rules(text: &str) -> Rules {
    Rules::parse_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn broken(rules: &Rules, value: &str) -> String {
    rules.check(value).expect_err(value).rule
}

/// Every rule string of the six eggs in ../shared/eggs, with values each
/// accepts and refuses as Laravel would.
/// Rules as written, values they accept, and values they refuse with the rule
/// that refuses each.
type Case<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)]);

#[test]
fn the_rules_of_the_real_eggs() {
    let cases: &[Case] = &[
        ("nullable|alpha_dash|between:1,100", &["", "Secret_pass-1", "é"], &[("pass word", "alpha_dash")]),
        (
            "required|alpha_dash|between:1,100",
            &["PleaseChangeMe"],
            &[("", "required"), (&"x".repeat(101), "between:1,100")],
        ),
        (
            "required|string|max:20",
            &["TheIsland", "a-name with spaces"],
            &[("", "required"), ("TheIslandTheIslandThe", "max:20")],
        ),
        (
            "required|numeric",
            &["27020", " 1.5", "-3e2", ".5", "1."],
            &[("port", "numeric"), ("0x1A", "numeric"), ("1e", "numeric")],
        ),
        ("required|boolean", &["0", "1"], &[("true", "boolean"), ("yes", "boolean"), ("", "required")]),
        ("nullable|numeric", &["", "376030"], &[("376030a", "numeric")]),
        (
            "required|integer|between:1,256",
            &["32", "1", "256", "+7"],
            &[("0", "between:1,256"), ("257", "between:1,256"), ("3.5", "integer"), ("007", "integer")],
        ),
        ("required|string|in:true,false", &["true", "false"], &[("True", "in:true,false"), ("1", "in:true,false")]),
        ("required|integer|min:0", &["0", "15"], &[("-1", "min:0")]),
        ("nullable|integer|gt:0", &["", "120"], &[("0", "gt:0")]),
        ("required|numeric|min:1", &["1011345"], &[("0", "min:1")]),
        ("required|string|regex:/^(?:true)?(?:false)?\\b/", &["true", "false"], &[("", "required")]),
        ("required|string|in:1420710", &["1420710"], &[("1420711", "in:1420710")]),
        ("boolean|in:1", &["1"], &[("0", "in:1"), ("2", "boolean")]),
        ("required|string|max:5", &["27016"], &[("270160", "max:5")]),
        (
            "required|string|in:Normal,Peaceful,Easy,Hard,Survival,Challenge,Legend,Custom",
            &["Legend"],
            &[("legend", "in:Normal,Peaceful,Easy,Hard,Survival,Challenge,Legend,Custom")],
        ),
        (
            "required|regex:/^([\\w\\d._-]+)(\\.jar)$/",
            &["server.jar", "paper-1.21.jar"],
            &[("server.zip", "regex:/^([\\w\\d._-]+)(\\.jar)$/"), ("a b.jar", "regex:/^([\\w\\d._-]+)(\\.jar)$/")],
        ),
        ("required|string|min:5|max:20", &["secret"], &[("four", "min:5")]),
        ("max:30", &["", "beta"], &[(&"b".repeat(31), "max:30")]),
        ("string", &["/^\\(Filename:.*Line:[[:space:]]+[[:digit:]]+\\)$/"], &[]),
    ];
    for (text, good, bad) in cases {
        let r = rules(text);
        for value in *good {
            assert_eq!(r.check(value), Ok(()), "{text} should accept {value:?}");
        }
        for (value, rule) in *bad {
            assert_eq!(broken(&r, value), *rule, "{text} should refuse {value:?} by {rule}");
        }
    }
}

#[test]
fn lists_read_as_pipe_strings_do_and_a_pipe_inside_a_pattern_stays_in_it() {
    let list = Rules::parse_list(&["required", "integer", "between:1,256"]).unwrap();
    assert_eq!(broken(&list, "300"), "between:1,256");
    let piped = rules("required|regex:/^(a|b)$/i|max:1");
    assert_eq!(piped.check("A"), Ok(()));
    assert_eq!(broken(&piped, "c"), "regex:/^(a|b)$/i");
    // Other delimiters, and a quoted `in` value with a comma.
    assert_eq!(rules("regex:#^x+$#").check("xxx"), Ok(()));
    assert_eq!(rules("regex:{^x+$}").check("xx"), Ok(()));
    let quoted = rules(r#"in:"a,b",c"#);
    assert_eq!(quoted.check("a,b"), Ok(()));
    assert_eq!(broken(&quoted, "a"), r#"in:"a,b",c"#);
}

#[test]
fn sizes_are_numbers_only_when_the_rules_say_numeric() {
    // Without numeric, `max:20` is a length: "100" has 3 characters.
    assert_eq!(rules("max:20").check("100"), Ok(()));
    assert_eq!(broken(&rules("numeric|max:20"), "100"), "max:20");
    // Characters, not bytes.
    assert_eq!(rules("max:3").check("äöü"), Ok(()));
    // A non-numeric value under a numeric rule is refused by that rule first.
    assert_eq!(broken(&rules("numeric|max:20"), "abcdefghijklmnopqrstuvwxyz"), "numeric");
}

#[test]
fn int_is_read_as_integer_and_said() {
    let r = rules("required|int");
    assert_eq!(broken(&r, "1.5"), "int");
    assert_eq!(r.notes().len(), 1);
    assert!(r.notes()[0].contains("not a Laravel rule"), "{:?}", r.notes());
}

#[test]
fn unknown_rules_and_bad_parameters_are_refused_by_name() {
    for (text, needle) in [
        ("required|sometimes", "`sometimes` is not a rule"),
        ("max", "`max` needs a parameter"),
        ("max:ten", "`ten` is not a number"),
        ("between:1", "needs two parameters"),
        ("string:5", "takes no parameter"),
        ("regex:^abc$", "not a delimited pattern"),
        ("regex:/(?=a)b/", "cannot be run here"),
        ("regex:/a/e", "flag `e`"),
    ] {
        let e = Rules::parse_str(text).expect_err(text);
        assert!(
            e.contains(needle) && e.contains(&format!("rule `{}", text.rsplit('|').next().unwrap())),
            "{text}: {e}"
        );
    }
}

#[test]
fn urls() {
    for good in ["https://example.com", "http://a.b:8080/x?y#z", "ftp://user@host/file", "http://[::1]:80/"] {
        assert!(is_url(good), "{good}");
    }
    for bad in ["example.com", "http://", "http://a b", "http://host:99999", "://x", "http://a..b"] {
        assert!(!is_url(bad), "{bad}");
    }
}

/// A rule with a value made to satisfy it and one made to break it.
fn rule_and_values() -> impl Strategy<Value = (String, String, String)> {
    let word = "[a-z]{1,12}";
    prop_oneof![
        (1u32..40, 0u32..40).prop_map(|(max, extra)| {
            (format!("max:{max}"), "x".repeat(max.min(extra).max(1) as usize), "y".repeat((max + 1 + extra) as usize))
        }),
        (2u32..40).prop_map(|min| (format!("min:{min}"), "a".repeat(min as usize), "a".repeat(min as usize - 1))),
        (-1000i64..1000, 0i64..500, 1i64..500).prop_map(|(a, span, out)| {
            let b = a + span;
            (format!("integer|between:{a},{b}"), (a + span / 2).to_string(), (b + out).to_string())
        }),
        (-1000i64..1000, 1i64..500).prop_map(|(n, d)| (
            format!("numeric|gt:{n}"),
            (n + d).to_string(),
            (n - d + 1).min(n).to_string()
        )),
        (0i64..100000).prop_map(|n| ("integer".to_string(), n.to_string(), format!("{n}.5"))),
        (0i64..100000).prop_map(|n| ("numeric".to_string(), format!("{n}.25"), format!("{n}x"))),
        prop::collection::btree_set(word, 1..6).prop_flat_map(|set| {
            let values: Vec<String> = set.into_iter().collect();
            let pick = 0..values.len();
            (Just(values), pick).prop_map(|(values, i)| {
                (format!("in:{}", values.join(",")), values[i].clone(), format!("{}-not", values[i]))
            })
        }),
        (word, word).prop_map(|(a, b)| (format!("ends_with:{a}"), format!("{b}{a}"), format!("{a}{b}!"))),
        (1usize..10, 1usize..10).prop_map(|(a, span)| {
            (format!("digits_between:{a},{}", a + span), "7".repeat(a), "7".repeat(a + span + 1))
        }),
        (word, 1usize..5).prop_map(|(w, n)| ("alpha_dash".to_string(), format!("{w}_{n}-x"), format!("{w} {n}"))),
        (word).prop_map(|w| ("regex:/^[a-z]+$/".to_string(), w.clone(), format!("{w}1"))),
        (0u8..2).prop_map(|b| (
            "boolean".to_string(),
            b.to_string(),
            ["true", "false", "2", "on"][b as usize].to_string()
        )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// A thousand random variable sets, each a few variables with rules and a
    /// value made to satisfy or to break one rule: the check accepts every
    /// satisfying set, and refuses a breaking one by the very rule broken.
    #[test]
    fn random_variable_sets_are_accepted_or_refused_by_the_rule_broken(
        vars in prop::collection::vec((rule_and_values(), any::<bool>(), any::<bool>()), 1..6)
    ) {
        for ((rule, good, bad), required, breaks) in vars {
            let text = if required { format!("required|string|{rule}") } else { format!("nullable|{rule}") };
            let r = Rules::parse_str(&text).map_err(TestCaseError::fail)?;
            prop_assert_eq!(r.check(&good), Ok(()), "{} should accept {:?}", text, good);
            if breaks {
                let b = r.check(&bad).expect_err(&bad);
                // The rule broken is the generated one (its last part when it has two).
                prop_assert!(rule.split('|').any(|part| part == b.rule), "{} refused {:?} by {}", text, bad, b.rule);
            }
            // An empty value: only `required` refuses it.
            prop_assert_eq!(r.check("").is_err(), required);
        }
    }
}
