//! Reading records back (`podsig history`): the event model names backends, syscalls and
//! runtimes with `&'static str`, which a deserializer cannot borrow from its input. Each
//! distinct string is leaked once; they come from small fixed sets, so this is bounded.

use std::{
    collections::BTreeSet,
    sync::{Mutex, PoisonError},
};

use serde::{Deserialize, Deserializer};

/// `&'static str` by another name: serde borrows fields spelled `&str` from the input
/// (which a `'static` field cannot), but not through an alias.
pub type Str = &'static str;

fn intern(s: String) -> &'static str {
    static SEEN: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut seen = SEEN.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(&known) = seen.get(s.as_str()) {
        return known;
    }
    let leaked: &'static str = Box::leak(s.into_boxed_str());
    seen.insert(leaked);
    leaked
}

pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    String::deserialize(d).map(intern)
}

pub fn option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'static str>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(intern))
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_copy_per_string() {
        let a = super::intern("ebpf".to_string());
        let b = super::intern(String::from("eb") + "pf");
        assert!(std::ptr::eq(a, b));
    }
}
