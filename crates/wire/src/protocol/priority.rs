//! Delivery priorities and the `:high`/`:med`/`:medium`/`:low` property-name suffixes.

use std::fmt;

/// Delivery priority of a value or property. Updates go out high, then medium, then low.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub enum Priority {
    High,
    #[default]
    Medium,
    Low,
}

impl Priority {
    /// High, medium, low: the emission order.
    pub const ORDER: [Priority; 3] = [Priority::High, Priority::Medium, Priority::Low];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Medium => "medium",
            Priority::Low => "low",
        }
    }

    /// The value of the `priority` property: `high`, `medium`/`med`, `low`, case-insensitive; anything
    /// else (including unset) is medium.
    pub fn from_property(value: &str) -> Priority {
        if value.eq_ignore_ascii_case("high") {
            Priority::High
        } else if value.eq_ignore_ascii_case("low") {
            Priority::Low
        } else {
            Priority::Medium
        }
    }

    /// Index into per-priority buckets (0 = high).
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Splits a priority suffix off a property name: `"x:high"` → `("x", Some(High))`. Any other `:text`
/// stays part of the name.
pub fn split_suffix(name: &str) -> (&str, Option<Priority>) {
    if let Some((base, suffix)) = name.rsplit_once(':') {
        let priority = match suffix {
            "high" => Some(Priority::High),
            "med" | "medium" => Some(Priority::Medium),
            "low" => Some(Priority::Low),
            _ => None,
        };
        if priority.is_some() {
            return (base, priority);
        }
    }
    (name, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes() {
        assert_eq!(split_suffix("x:high"), ("x", Some(Priority::High)));
        assert_eq!(split_suffix("x:med"), ("x", Some(Priority::Medium)));
        assert_eq!(split_suffix("x:medium"), ("x", Some(Priority::Medium)));
        assert_eq!(split_suffix("x:low"), ("x", Some(Priority::Low)));
        assert_eq!(split_suffix("x:HIGH"), ("x:HIGH", None));
        assert_eq!(split_suffix("a:b"), ("a:b", None));
        assert_eq!(split_suffix("a:b:low"), ("a:b", Some(Priority::Low)));
        assert_eq!(split_suffix("plain"), ("plain", None));
    }

    #[test]
    fn property_values() {
        assert_eq!(Priority::from_property("HIGH"), Priority::High);
        assert_eq!(Priority::from_property("Med"), Priority::Medium);
        assert_eq!(Priority::from_property("low"), Priority::Low);
        assert_eq!(Priority::from_property("urgent"), Priority::Medium);
        assert_eq!(Priority::from_property(""), Priority::Medium);
        assert!(Priority::High < Priority::Medium && Priority::Medium < Priority::Low);
    }
}
