//! `[[feeds.rules]]`: block and allow rules, regexes over an item's fields.

use regex::Regex;

use super::outline::ItemOutline;

/// One rule: a regex, what matching it does, and the field it reads.
#[derive(Debug, Clone)]
pub struct Rule {
    pub action: RuleAction,
    pub pattern: Regex,
    pub field: RuleField,
}

/// Rules are equal when they say the same: a regex compares by its text.
impl PartialEq for Rule {
    fn eq(&self, other: &Self) -> bool {
        self.action == other.action && self.field == other.field && self.pattern.as_str() == other.pattern.as_str()
    }
}

impl Eq for Rule {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    /// An item that matches is dropped.
    Block,
    /// With any allow rule, only items that match one stay.
    Allow,
}

/// The field a rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleField {
    Title,
    /// RSS `description` and `content:encoded`, Atom `summary` and `content`, as text (HTML
    /// markup included, as the feed carries it).
    Content,
    Link,
    /// RSS `author`, `dc:creator`, Atom `author`.
    Author,
    /// RSS `category`, `dc:subject`, Atom `category` terms, each on its own line.
    Category,
    /// Any of them.
    Any,
}

impl Rule {
    /// A rule from `block` or `allow` (exactly one) and `field` (default `any`); the error says
    /// what is wrong, for the key that holds it.
    pub fn parse(block: Option<&str>, allow: Option<&str>, field: Option<&str>) -> Result<Self, String> {
        let (action, pattern) = match (block, allow) {
            (Some(pattern), None) => (RuleAction::Block, pattern),
            (None, Some(pattern)) => (RuleAction::Allow, pattern),
            _ => return Err("give exactly one of block or allow, a regex".into()),
        };
        let field = match field.unwrap_or("any") {
            "title" => RuleField::Title,
            "content" => RuleField::Content,
            "link" => RuleField::Link,
            "author" => RuleField::Author,
            "category" => RuleField::Category,
            "any" => RuleField::Any,
            other => {
                return Err(format!(
                    "field {other:?} is not one of title, content, link, author, category, any"
                ));
            }
        };
        // The regex crate's own bounds (size limits, linear time) hold for any pattern.
        let pattern = Regex::new(pattern).map_err(|e| format!("{pattern:?} is not a regex: {e}"))?;
        Ok(Self { action, pattern, field })
    }

    fn matches(&self, item: &ItemOutline) -> bool {
        let categories = item.categories.join("\n");
        let link = item.link.as_deref().unwrap_or("");
        let fields: &[&str] = match self.field {
            RuleField::Title => &[&item.title],
            RuleField::Content => &[&item.content],
            RuleField::Link => &[link],
            RuleField::Author => &[&item.author],
            RuleField::Category => &[&categories],
            RuleField::Any => &[&item.title, &item.content, link, &item.author, &categories],
        };
        fields.iter().any(|text| self.pattern.is_match(text))
    }
}

/// Whether an item stays: it matches no block rule, and, when there are allow rules, one of them.
pub(crate) fn keeps(rules: &[Rule], item: &ItemOutline) -> bool {
    let blocked = rules.iter().any(|r| r.action == RuleAction::Block && r.matches(item));
    let allows = rules.iter().filter(|r| r.action == RuleAction::Allow);
    let allowed = allows.clone().next().is_none() || allows.clone().any(|r| r.matches(item));
    !blocked && allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(title: &str, categories: &[&str]) -> ItemOutline {
        ItemOutline {
            title: title.into(),
            link: Some("https://o/1".into()),
            categories: categories.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn block_then_allow() {
        let rules = [
            Rule::parse(Some("(?i)sponsored"), None, Some("title")).unwrap(),
            Rule::parse(None, Some("rust|tokio"), None).unwrap(),
        ];
        assert!(keeps(&rules, &item("rust 1.95", &[])));
        assert!(!keeps(&rules, &item("SPONSORED rust", &[])));
        assert!(!keeps(&rules, &item("go 1.30", &[])));
        assert!(keeps(&rules, &item("release", &["tokio"])));
        assert!(keeps(&[], &item("anything", &[])));
    }

    #[test]
    fn bad_rules_say_why() {
        assert!(Rule::parse(Some("("), None, None).unwrap_err().contains("not a regex"));
        assert!(
            Rule::parse(Some("a"), Some("b"), None)
                .unwrap_err()
                .contains("exactly one")
        );
        assert!(Rule::parse(None, None, None).is_err());
        assert!(
            Rule::parse(Some("a"), None, Some("body"))
                .unwrap_err()
                .contains("\"body\"")
        );
    }
}
