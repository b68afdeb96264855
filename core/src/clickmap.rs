//! What click maps and scroll maps keep of a batch ([`PageActivity`]): per page URL seen in
//! the batch, clicks by element path (the recorder's short CSS selector) with a label and the
//! sum of their positions, and the deepest tenth of the page reached. The storage engines add
//! it to per-project, per-page, per-day aggregates at ingest, so a click map costs the pages
//! and days it covers, never the sessions.
//!
//! A page's URL is [`normalize_url`]d: origin and path, lowercased, query and fragment
//! dropped (where tokens and personal data usually live). Clicks before the batch's first page
//! URL belong to the URL the page view had when the batch started (an earlier batch's: `url`
//! is `None` and the engine knows it). Everything is bounded per batch: at most
//! [`MAX_PAGES_PER_BATCH`] URLs and [`MAX_ELEMENTS_PER_BATCH`] element paths per URL; what does
//! not fit is counted in [`Activity::dropped`].

use replay_protocol::{EventData, MAX_CLICK_PATH};

/// Most page URLs one batch contributes (in-page navigations); clicks on more are dropped.
pub const MAX_PAGES_PER_BATCH: usize = 16;
/// Most distinct element paths one batch contributes per URL; more are dropped.
pub const MAX_ELEMENTS_PER_BATCH: usize = 200;
/// Longest normalized URL kept, in characters (longer ones are cut).
pub const MAX_URL_CHARS: usize = 300;
/// Longest label kept, in characters.
pub const MAX_LABEL_CHARS: usize = 60;

/// Clicks on one element of a page in one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementClicks {
    /// The recorder's CSS selector of the element (at most [`MAX_CLICK_PATH`] bytes).
    pub path: String,
    /// A label of the element (its text as recorded, masked in the page); the first that says
    /// something, empty when none did.
    pub label: String,
    pub clicks: u64,
    /// Sums of the clicks' viewport positions (CSS pixels): divided by `clicks`, where the
    /// element was usually clicked on screen.
    pub x_sum: i64,
    pub y_sum: i64,
}

/// What one batch did on one page URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageActivity {
    /// The normalized URL; `None`: the page view's URL when the batch started.
    pub url: Option<String>,
    /// Clicks by element path, at most [`MAX_ELEMENTS_PER_BATCH`].
    pub elements: Vec<ElementClicks>,
    /// The deepest tenth of the page seen (0 to 10), when the recorder said.
    pub depth: Option<u8>,
    /// When the page was last seen at this URL in the batch (Unix ms, recorder clock).
    pub last_ms: u64,
}

/// What a batch gives click maps and scroll maps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    /// By URL in the order first seen; the one with `url: None` (if any) first.
    pub pages: Vec<PageActivity>,
    /// Clicks left out by the caps above (and clicks with no path, from older recorders, are
    /// not counted at all).
    pub dropped: u64,
}

impl Activity {
    /// Whether the batch gives click maps nothing.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty() && self.dropped == 0
    }

    /// Takes in one event of the batch, at `at_ms`.
    pub fn see<S: AsRef<str>>(&mut self, at_ms: u64, data: &EventData<S>) {
        match data {
            EventData::Meta(m) => self.enter(m.url.as_ref(), at_ms),
            EventData::Navigation(n) => self.enter(n.url.as_ref(), at_ms),
            EventData::Click(c) if !c.path.is_empty() => {
                let Some(page) = self.current(at_ms) else {
                    self.dropped += 1;
                    return;
                };
                let path = cut_bytes(clean(&c.path), MAX_CLICK_PATH);
                if let Some(e) = page.elements.iter_mut().find(|e| e.path == path) {
                    e.clicks += 1;
                    e.x_sum = e.x_sum.saturating_add(i64::from(c.x));
                    e.y_sum = e.y_sum.saturating_add(i64::from(c.y));
                    if e.label.is_empty() {
                        e.label = label(&c.label);
                    }
                } else if page.elements.len() < MAX_ELEMENTS_PER_BATCH {
                    page.elements.push(ElementClicks {
                        path,
                        label: label(&c.label),
                        clicks: 1,
                        x_sum: i64::from(c.x),
                        y_sum: i64::from(c.y),
                    });
                } else {
                    self.dropped += 1;
                }
            }
            EventData::ScrollDepth(d) => {
                if let Some(page) = self.current(at_ms) {
                    page.depth = Some(page.depth.unwrap_or(0).max(d.tenth()));
                }
            }
            _ => {}
        }
    }

    /// The page now shown: the last URL entered, or the one the batch started on.
    fn current(&mut self, at_ms: u64) -> Option<&mut PageActivity> {
        if self.pages.is_empty() {
            self.pages.push(PageActivity { url: None, last_ms: at_ms, ..PageActivity::default() });
        }
        let page = self.pages.last_mut()?;
        page.last_ms = page.last_ms.max(at_ms);
        Some(page)
    }

    fn enter(&mut self, url: &str, at_ms: u64) {
        let Some(url) = normalize_url(url) else { return };
        // Back to a URL already seen in this batch: it becomes the current one again.
        if let Some(i) = self.pages.iter().position(|p| p.url.as_deref() == Some(url.as_str())) {
            let mut page = self.pages.remove(i);
            page.last_ms = page.last_ms.max(at_ms);
            self.pages.push(page);
            return;
        }
        if self.pages.len() >= MAX_PAGES_PER_BATCH {
            // Clicks from here on land on the last page kept: count them as dropped instead.
            self.pages.push(PageActivity { url: Some(url), last_ms: at_ms, ..PageActivity::default() });
            let extra = self.pages.remove(MAX_PAGES_PER_BATCH - 1);
            self.dropped += extra.elements.iter().map(|e| e.clicks).sum::<u64>();
            return;
        }
        self.pages.push(PageActivity { url: Some(url), last_ms: at_ms, ..PageActivity::default() });
    }

    /// Orders pages so that the one without a URL comes first, then by URL (a fixed order of
    /// the rows a batch updates), and each page's elements by path.
    pub fn finish(&mut self) {
        self.pages.sort_by(|a, b| a.url.cmp(&b.url));
        for p in &mut self.pages {
            p.elements.sort_by(|a, b| a.path.cmp(&b.path));
        }
    }
}

/// A page URL as click maps group it: `scheme://host[:port]/path`, lowercased, without query
/// or fragment, at most [`MAX_URL_CHARS`] characters; `None` for an empty one.
pub fn normalize_url(url: &str) -> Option<String> {
    let url = url.trim();
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let mut out: String = clean(&url[..end]).chars().take(MAX_URL_CHARS).flat_map(char::to_lowercase).collect();
    // `https://shop.test` and `https://shop.test/` are the same page.
    if let Some(rest) = out.find("://").map(|i| &out[i + 3..])
        && !rest.contains('/')
        && !rest.is_empty()
    {
        out.push('/');
    }
    (!out.is_empty()).then_some(out)
}

/// The text without control characters (NUL included: PostgreSQL refuses it in text).
fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

/// A label worth keeping: white space collapsed, cut; empty when masked whole (all `*`).
fn label(raw: &str) -> String {
    let text: String = clean(raw).split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().all(|c| c == '*' || c == ' ') {
        return String::new();
    }
    text.chars().take(MAX_LABEL_CHARS).collect()
}

fn cut_bytes(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use replay_protocol::{Click, Navigation, NavigationKind, ScrollDepth};

    fn click(path: &str, label: &str, x: i32, y: i32) -> EventData {
        EventData::Click(Click { id: 1, x, y, button: 0, label: label.into(), path: path.into(), interactive: None })
    }

    fn nav(url: &str) -> EventData {
        EventData::Navigation(Navigation { url: url.into(), kind: NavigationKind::Push })
    }

    #[test]
    fn urls_keep_origin_and_path_only() {
        assert_eq!(normalize_url("https://Shop.test/Cart?id=5#top").as_deref(), Some("https://shop.test/cart"));
        assert_eq!(normalize_url("https://shop.test").as_deref(), Some("https://shop.test/"));
        assert_eq!(normalize_url("https://shop.test?x").as_deref(), Some("https://shop.test/"));
        assert_eq!(normalize_url(" ?only=query"), None);
        assert_eq!(normalize_url(&format!("https://a.test/{}", "x".repeat(1000))).map(|u| u.len()), Some(300));
    }

    #[test]
    fn clicks_are_grouped_by_page_and_path_with_the_first_label_that_says_something() {
        let mut a = Activity::default();
        a.see(1, &click("#buy", "****", 10, 20));
        a.see(2, &click("#buy", "Buy  now", 30, 40));
        a.see(3, &click("", "old recorder", 0, 0));
        a.see(4, &nav("https://shop.test/b?q=1"));
        a.see(5, &click("body > a", "B", 1, 1));
        a.see(6, &EventData::<String>::ScrollDepth(ScrollDepth { bottom: 500, height: 1000 }));
        a.see(7, &EventData::<String>::ScrollDepth(ScrollDepth { bottom: 300, height: 1000 }));
        a.finish();
        assert_eq!(a.pages.len(), 2);
        let first = &a.pages[0];
        assert_eq!((first.url.as_deref(), first.depth, first.last_ms), (None, None, 2));
        assert_eq!(
            first.elements,
            [ElementClicks { path: "#buy".into(), label: "Buy now".into(), clicks: 2, x_sum: 40, y_sum: 60 }]
        );
        let second = &a.pages[1];
        assert_eq!((second.url.as_deref(), second.depth, second.last_ms), (Some("https://shop.test/b"), Some(5), 7));
        assert_eq!(a.dropped, 0);
    }

    #[test]
    fn a_batch_contributes_a_bounded_number_of_pages_and_elements() {
        let mut a = Activity::default();
        a.see(0, &nav("https://shop.test/"));
        for i in 0..(MAX_ELEMENTS_PER_BATCH + 5) {
            a.see(1, &click(&format!("#e{i}"), "", 0, 0));
        }
        for i in 0..40 {
            a.see(2, &nav(&format!("https://shop.test/{i}")));
            a.see(2, &click("#x", "", 0, 0));
        }
        a.see(3, &click(&"p".repeat(1000), "", 0, 0));
        assert_eq!(a.pages.len(), MAX_PAGES_PER_BATCH);
        assert_eq!(a.pages[0].elements.len(), MAX_ELEMENTS_PER_BATCH);
        // 5 elements over the cap; 25 pages over it, each taking the click of the one before.
        assert_eq!(a.dropped, 5 + 25);
        assert!(a.pages.iter().flat_map(|p| &p.elements).all(|e| e.path.len() <= MAX_CLICK_PATH));
    }

    #[test]
    fn depth_tenths() {
        let d = |bottom, height| ScrollDepth { bottom, height }.tenth();
        assert_eq!((d(0, 1000), d(99, 1000), d(100, 1000), d(999, 1000), d(1000, 1000)), (0, 0, 1, 9, 10));
        assert_eq!((d(800, 600), d(10, 0)), (10, 10));
    }
}
