//! Kubernetes quantities (`1Gi`, `500m`, `1.5`, `1e3`), parsed exactly: the
//! Kubernetes backend compares them by value, the swarm backend converts them
//! to the engine's bytes and nano-CPUs, and the facade checks storage sizes.

/// A quantity's exact value, `mantissa × 10^exp10` (negated when `negative`),
/// with the mantissa's trailing zeros moved into the exponent: equal amounts
/// written differently (`1`, `1000m`, `1e3m`; `1Gi`, `1024Mi`) are equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantity {
    negative: bool,
    mantissa: u128,
    exp10: i32,
}

impl Quantity {
    /// `None` for what is not a quantity, or one too large to hold exactly.
    pub fn parse(q: &str) -> Option<Quantity> {
        let (negative, rest) = match q.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, q.strip_prefix('+').unwrap_or(q)),
        };
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return None;
        }
        let (exp10, exp2): (i32, u32) = match suffix {
            "" => (0, 0),
            "n" => (-9, 0),
            "u" => (-6, 0),
            "m" => (-3, 0),
            "k" => (3, 0),
            "M" => (6, 0),
            "G" => (9, 0),
            "T" => (12, 0),
            "P" => (15, 0),
            "E" => (18, 0),
            "Ki" => (0, 10),
            "Mi" => (0, 20),
            "Gi" => (0, 30),
            "Ti" => (0, 40),
            "Pi" => (0, 50),
            "Ei" => (0, 60),
            _ => {
                let exponent = suffix.strip_prefix(['e', 'E'])?;
                let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
                if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (exponent.parse().ok()?, 0)
            }
        };
        let digits = format!("{whole}{fraction}");
        let digits = digits.trim_start_matches('0');
        if digits.is_empty() {
            return Some(Quantity { negative: false, mantissa: 0, exp10: 0 });
        }
        if digits.len() > 38 {
            return None;
        }
        let mut mantissa: u128 = digits.parse().ok()?;
        mantissa = mantissa.checked_mul(1u128 << exp2)?;
        let mut exp10 = exp10 - i32::try_from(fraction.len()).ok()?;
        while mantissa.is_multiple_of(10) {
            mantissa /= 10;
            exp10 += 1;
        }
        Some(Quantity { negative, mantissa, exp10 })
    }

    /// Greater than zero.
    pub fn is_positive(&self) -> bool {
        !self.negative && self.mantissa > 0
    }

    /// The amount in units of 10^-`scale` (0: bytes or cores, 9: nano-cores),
    /// rounded up as Kubernetes does: never less than asked. `None` when it is
    /// negative or does not fit an i64.
    pub fn scaled(&self, scale: u32) -> Option<i64> {
        if self.negative {
            return None;
        }
        let exp10 = self.exp10.checked_add(i32::try_from(scale).ok()?)?;
        let value = if exp10 >= 0 {
            self.mantissa.checked_mul(10u128.checked_pow(exp10.unsigned_abs())?)?
        } else {
            match 10u128.checked_pow(exp10.unsigned_abs()) {
                Some(divisor) => self.mantissa.div_ceil(divisor),
                // Past u128: a non-zero value this small still rounds up to one.
                None => u128::from(self.mantissa > 0),
            }
        };
        i64::try_from(value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_compare_by_value() {
        let same = |a: &str, b: &str| Quantity::parse(a).is_some() && Quantity::parse(a) == Quantity::parse(b);
        for (a, b) in [
            ("1", "1000m"),
            ("0.5", "500m"),
            ("1.5Gi", "1536Mi"),
            ("1024Mi", "1Gi"),
            ("1e9", "1G"),
            ("1e3", "1k"),
            ("+2", "2"),
            ("1024", "1Ki"),
            ("0", "0m"),
            ("-1", "-1000m"),
            ("1E3", "1k"),
        ] {
            assert!(same(a, b), "{a} = {b}");
        }
        for (a, b) in [("1", "1m"), ("1Gi", "1G"), ("1", "-1"), ("1.5", "1500")] {
            assert!(!same(a, b), "{a} != {b}");
        }
        for q in ["", ".", "lots", "1x", "1e", "1..5", "1e99999", "1Gib", "--1", "1.2.3", "Gi", "1GB"] {
            assert_eq!(Quantity::parse(q), None, "{q}");
        }
    }

    #[test]
    fn quantities_scale_to_whole_units_rounding_up() {
        for (q, scale, want) in [
            ("1", 9, Some(1_000_000_000)),
            ("2", 9, Some(2_000_000_000)),
            ("500m", 9, Some(500_000_000)),
            ("0.5", 9, Some(500_000_000)),
            ("1.5", 9, Some(1_500_000_000)),
            ("0.1", 9, Some(100_000_000)),
            ("1n", 9, Some(1)),
            ("100u", 9, Some(100_000)),
            ("1e-10", 9, Some(1)), // rounded up: never less than asked
            ("1e-999", 0, Some(1)),
            ("64Mi", 0, Some(64 * 1024 * 1024)),
            ("4Gi", 0, Some(4 * 1024 * 1024 * 1024)),
            ("1.5Gi", 0, Some(1_610_612_736)),
            ("128974848", 0, Some(128_974_848)),
            ("129e6", 0, Some(129_000_000)),
            ("129M", 0, Some(129_000_000)),
            ("1k", 0, Some(1000)),
            ("+1Ki", 0, Some(1024)),
            ("0", 0, Some(0)),
            ("8Ei", 0, None), // past i64
            ("1e999", 0, None),
            ("-1", 0, None),
        ] {
            assert_eq!(Quantity::parse(q).and_then(|v| v.scaled(scale)), want, "{q}");
        }
    }

    #[test]
    fn only_amounts_above_zero_are_positive() {
        for (q, positive) in [("1Gi", true), ("1m", true), ("0.001", true), ("0", false), ("0Gi", false), ("-1", false)]
        {
            assert_eq!(Quantity::parse(q).is_some_and(|v| v.is_positive()), positive, "{q}");
        }
    }
}
