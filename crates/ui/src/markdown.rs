//! A model's README, rendered so that nothing in it can act.
//!
//! The README is whatever the pusher wrote. It is parsed as CommonMark and
//! the parse is filtered before HTML is written, rather than rendered and
//! then sanitised: raw HTML (block or inline) becomes text, so it is shown
//! escaped; a link survives only to http, https, mailto or an anchor on the
//! page (not `javascript:`, `data:`, or a relative path that would resolve
//! into the UI); images become their alt text (the CSP blocks other
//! origins anyway, and a README has no images of ours). What is left is
//! written by pulldown-cmark, which escapes text and attribute values.

use pulldown_cmark::{html, CowStr, Event, Options, Parser, Tag, TagEnd};

/// Most of a README rendered; the rest is cut (at a character boundary)
/// and the page says so.
pub const MAX_README: usize = 256 << 10;

/// The HTML for `text` (at most [`MAX_README`] bytes of it).
pub fn render(text: &str) -> String {
    let mut cut = text.len().min(MAX_README);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let text = &text[..cut];
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    // For each open link: whether it was kept (its end is dropped with it).
    let mut links: Vec<bool> = Vec::new();
    let events = Parser::new_ext(text, options).filter_map(|e| match e {
        Event::Html(raw) | Event::InlineHtml(raw) => Some(Event::Text(raw)),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => {
            let keep = allowed_href(&dest_url);
            links.push(keep);
            keep.then_some(Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }))
        }
        Event::End(TagEnd::Link) => links.pop().unwrap_or(false).then_some(e),
        Event::Start(Tag::Image { .. }) | Event::End(TagEnd::Image) => None,
        other => Some(other),
    });
    let mut out = String::with_capacity(text.len() + text.len() / 2);
    html::push_html(&mut out, events);
    out
}

/// Whether a link may point at `dest`. Browsers drop ASCII tabs and
/// newlines inside a URL and leading spaces or controls before reading its
/// scheme (`java\tscript:` runs), so the scheme is judged on what the
/// browser would read.
pub fn allowed_href(dest: &CowStr<'_>) -> bool {
    let seen: String = dest
        .chars()
        .filter(|c| !c.is_ascii_whitespace() && !c.is_ascii_control())
        .collect::<String>()
        .to_ascii_lowercase();
    seen.starts_with("https://")
        || seen.starts_with("http://")
        || seen.starts_with("mailto:")
        || (seen.starts_with('#') && seen.len() > 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_html_is_shown_not_run() {
        let out =
            render("# Hi\n\n<script>alert(1)</script>\n\ntext <img src=x onerror=alert(2)> more");
        assert!(!out.contains("<script"), "{out}");
        assert!(!out.contains("<img"), "{out}");
        assert!(
            out.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{out}"
        );
        assert!(out.contains("&lt;img src=x onerror=alert(2)&gt;"), "{out}");
        assert!(out.contains("<h1>Hi</h1>"), "{out}");
    }

    #[test]
    fn only_safe_links_survive() {
        for bad in [
            "[x](javascript:alert(1))",
            "[x](JaVaScRiPt:alert(1))",
            "[x](java\tscript:alert(1))",
            "[x]( javascript:alert(1))",
            "[x](data:text/html,<script>alert(1)</script>)",
            "[x](vbscript:msgbox)",
            "[x](../../v2/_catalog)",
            "[x](/ui/logout)",
            "<javascript:alert(1)>",
        ] {
            let out = render(bad);
            assert!(!out.contains("<a"), "{bad} gave {out}");
            assert!(
                out.contains('x') || out.contains("javascript"),
                "{bad}: text kept: {out}"
            );
        }
        let out =
            render("[docs](https://example.com/a?b=1&c=\"2\") [mail](mailto:a@b.c) [top](#usage)");
        assert!(
            out.contains(r#"<a href="https://example.com/a?b=1&amp;c=%222%22">docs</a>"#),
            "{out}"
        );
        assert!(out.contains(r#"<a href="mailto:a@b.c">mail</a>"#), "{out}");
        assert!(out.contains(r##"<a href="#usage">top</a>"##), "{out}");
    }

    #[test]
    fn nested_links_and_images_keep_their_text() {
        let out = render("[![logo](https://e.com/l.png) home](javascript:x) ![alt text](x.png)");
        assert!(!out.contains("<img") && !out.contains("<a"), "{out}");
        assert!(
            out.contains("logo") && out.contains("home") && out.contains("alt text"),
            "{out}"
        );
    }

    #[test]
    fn huge_readmes_are_cut_at_a_character() {
        let text = "é".repeat(MAX_README);
        let out = render(&text);
        assert!(out.len() < MAX_README + 64);
        assert!(out.starts_with("<p>é"));
    }

    #[test]
    fn attributes_cannot_be_broken_out_of() {
        let out = render("[a](https://x.com/\"onmouseover=\"alert(1) \"t\\\"itle\")");
        assert!(!out.contains("\"onmouseover"), "{out}");
    }
}
