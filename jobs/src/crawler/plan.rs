//! Which listed objects a crawl reads: new ones, changed ones (etag, size or mtime differ), or
//! all of them with `recrawl`. Hidden files (`_SUCCESS`, `.crc`, any segment starting with `_` or
//! `.`) are skipped, as Hadoop-style writers expect.

use std::collections::HashMap;

/// An object as the store lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified_ms: i64,
}

/// An object as the catalog last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownObject {
    pub etag: Option<String>,
    pub size: u64,
    pub last_modified_ms: i64,
    /// The store stopped listing it.
    pub gone: bool,
}

/// The crawl's reading list.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub to_crawl: Vec<ListedObject>,
    /// Of `to_crawl`, those the catalog knew in another version (or as gone).
    pub changed: usize,
    pub unchanged: usize,
    pub hidden: usize,
    /// Objects the catalog knew under the prefix that the store no longer lists.
    pub gone: Vec<String>,
}

fn hidden(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix)
        .unwrap_or(key)
        .split('/')
        .any(|segment| segment.starts_with('_') || segment.starts_with('.'))
}

/// Decides what to crawl. Objects come back sorted by key, so plans are deterministic.
pub fn select(
    mut listed: Vec<ListedObject>,
    known: &HashMap<String, KnownObject>,
    prefix: &str,
    recrawl: bool,
) -> Selection {
    listed.sort_by(|a, b| a.key.cmp(&b.key));
    let mut selection = Selection::default();
    let present: std::collections::HashSet<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    let mut gone: Vec<String> = known
        .iter()
        .filter(|(key, seen)| {
            !seen.gone && key.starts_with(prefix) && !present.contains(key.as_str())
        })
        .map(|(key, _)| key.clone())
        .collect();
    gone.sort();
    selection.gone = gone;
    for object in listed {
        if hidden(&object.key, prefix) {
            selection.hidden += 1;
            continue;
        }
        match known.get(&object.key) {
            Some(seen)
                if !recrawl
                    && !seen.gone
                    && seen.size == object.size
                    && seen.etag == object.etag
                    && seen.last_modified_ms == object.last_modified_ms =>
            {
                selection.unchanged += 1;
            }
            Some(_) => {
                selection.changed += 1;
                selection.to_crawl.push(object);
            }
            None => selection.to_crawl.push(object),
        }
    }
    selection
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(key: &str, size: u64) -> ListedObject {
        ListedObject {
            key: key.into(),
            size,
            etag: Some(format!("e{size}")),
            last_modified_ms: 1,
        }
    }

    #[test]
    fn only_new_and_changed_objects_are_crawled() {
        let known: HashMap<String, KnownObject> = [
            (
                "p/a".to_owned(),
                KnownObject {
                    etag: Some("e1".into()),
                    size: 1,
                    last_modified_ms: 1,
                    gone: false,
                },
            ),
            (
                "p/b".to_owned(),
                KnownObject {
                    etag: Some("e1".into()),
                    size: 1,
                    last_modified_ms: 1,
                    gone: false,
                },
            ),
        ]
        .into();
        let objects = vec![
            listed("p/c", 3),
            listed("p/b", 2),
            listed("p/a", 1),
            listed("p/_SUCCESS", 0),
            listed("p/.x/y", 1),
        ];
        let selection = select(objects.clone(), &known, "p/", false);
        let keys: Vec<_> = selection.to_crawl.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["p/b", "p/c"]);
        assert_eq!(
            (selection.changed, selection.unchanged, selection.hidden),
            (1, 1, 2)
        );
        let everything = select(objects.clone(), &known, "p/", true);
        assert_eq!(everything.to_crawl.len(), 3);
        assert!(everything.gone.is_empty());

        // An object the store stops listing is gone; one that comes back is crawled again.
        let without_a: Vec<ListedObject> =
            objects.iter().filter(|o| o.key != "p/a").cloned().collect();
        assert_eq!(select(without_a, &known, "p/", false).gone, ["p/a"]);
        let mut known = known;
        known.get_mut("p/a").unwrap().gone = true;
        let back = select(objects, &known, "p/", false);
        assert!(back.gone.is_empty());
        assert!(back.to_crawl.iter().any(|o| o.key == "p/a"));
    }
}
