//! Image links in Reddit text (message bodies, self text, comments): which ones inlet
//! downloads as attachments.
//!
//! Recognised, inside markdown links `[text](url)` or bare:
//! * `i.redd.it/<id>.<ext>` — direct uploads;
//! * `preview.redd.it/<id>.<ext>?width=..&s=<sig>` — signed; the query is kept byte for
//!   byte, except that HTML-escaped `&amp;` (legacy responses without `raw_json=1`) is
//!   turned back into `&`, or the signature would not match;
//! * `matrix.redditspace.com/_matrix/media/v3/download/...` (and the older `r0`) — Reddit
//!   Chat media;
//! * `i.imgur.com/<id>.<ext>` — direct Imgur images;
//! * `imgur.com/<id>` page links (also `www.` and `m.`) — mapped to the direct image
//!   `https://i.imgur.com/<id>.jpg` without a request (Imgur serves the image under any
//!   image extension with its real content type). Albums (`/a/..`) and galleries
//!   (`/gallery/..`) are not single images and are left alone.
//!
//! Anything else (other hosts, Reddit pages, `external-preview.redd.it`) is not an
//! attachment.

/// The attachment URLs in `text`, in order of first appearance, without duplicates.
pub fn image_links(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(i) = find_scheme(rest) {
        let candidate = &rest[i..];
        let end = candidate
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | ']' | '<' | '>' | '"' | '\''))
            .unwrap_or(candidate.len());
        let raw = candidate[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', '*', '_']);
        if let Some(url) = classify(&raw.replace("&amp;", "&"))
            && !out.contains(&url)
        {
            out.push(url);
        }
        rest = &candidate[end.max(1)..];
    }
    out
}

fn find_scheme(s: &str) -> Option<usize> {
    let a = s.find("https://");
    let b = s.find("http://");
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The URL to download for a link, or `None` when it is not an image attachment.
fn classify(url: &str) -> Option<String> {
    let after_scheme = url.split_once("://")?.1;
    let host_end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    let host = after_scheme[..host_end].to_ascii_lowercase();
    let rest = &after_scheme[host_end..];
    let path = rest.split(['?', '#']).next().unwrap_or("");
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match host.as_str() {
        "i.redd.it" | "preview.redd.it" | "i.imgur.com" => {
            let file = segments.last()?;
            has_image_name(file).then(|| {
                // Drop a fragment; keep the query exactly (it carries the signature).
                let no_frag = rest.split('#').next().unwrap_or(rest);
                format!("https://{host}{no_frag}")
            })
        }
        "matrix.redditspace.com" => {
            let ok = segments.len() >= 6
                && segments[0] == "_matrix"
                && segments[1] == "media"
                && matches!(segments[2], "v3" | "r0")
                && segments[3] == "download";
            ok.then(|| format!("https://{host}{path}"))
        }
        "imgur.com" | "www.imgur.com" | "m.imgur.com" => match segments.as_slice() {
            [id] => {
                let (stem, ext) = id.split_once('.').unwrap_or((id, "jpg"));
                let valid = (5..=10).contains(&stem.len())
                    && stem.chars().all(|c| c.is_ascii_alphanumeric())
                    && is_image_ext(ext);
                valid.then(|| format!("https://i.imgur.com/{stem}.{}", ext.to_ascii_lowercase()))
            }
            _ => None,
        },
        _ => None,
    }
}

fn has_image_name(file: &str) -> bool {
    file.rsplit_once('.')
        .is_some_and(|(stem, ext)| !stem.is_empty() && is_image_ext(ext))
}

fn is_image_ext(ext: &str) -> bool {
    matches!(
        ext.to_ascii_lowercase().as_str(),
        "jpg" | "jpeg" | "png" | "gif" | "webp" | "avif" | "bmp"
    )
}

#[cfg(test)]
mod tests {
    use super::image_links;

    #[test]
    fn markdown_and_bare_links_on_every_host() {
        let body = "Here it is [photo](https://i.redd.it/ab12cd34ef56g.jpg). Also \
            https://preview.redd.it/xyz987abc.png?width=640&format=png&auto=webp&s=0123abcd, and \
            sent an [image](https://matrix.redditspace.com/_matrix/media/v3/download/reddit.com/8ht2ksbmvhqb1) \
            and the old one https://matrix.redditspace.com/_matrix/media/r0/download/reddit.com/abc \
            plus https://imgur.com/AbC12xY and [direct](https://i.imgur.com/QwErTy1.png)!";
        assert_eq!(
            image_links(body),
            vec![
                "https://i.redd.it/ab12cd34ef56g.jpg",
                "https://preview.redd.it/xyz987abc.png?width=640&format=png&auto=webp&s=0123abcd",
                "https://matrix.redditspace.com/_matrix/media/v3/download/reddit.com/8ht2ksbmvhqb1",
                "https://matrix.redditspace.com/_matrix/media/r0/download/reddit.com/abc",
                "https://i.imgur.com/AbC12xY.jpg",
                "https://i.imgur.com/QwErTy1.png",
            ]
        );
    }

    #[test]
    fn escaped_preview_query_is_unescaped() {
        // Without raw_json=1 Reddit sends `&amp;`; the signature only matches with `&`.
        let body = "[preview](https://preview.redd.it/k2j3h4.jpg?width=1080&amp;crop=smart&amp;auto=webp&amp;s=9f8e7d6c)";
        assert_eq!(
            image_links(body),
            vec!["https://preview.redd.it/k2j3h4.jpg?width=1080&crop=smart&auto=webp&s=9f8e7d6c"]
        );
    }

    #[test]
    fn not_attachments() {
        let body = "See https://www.reddit.com/r/pics/comments/abc/title/ and \
            https://imgur.com/a/AlBuM12 and https://imgur.com/gallery/GaLlErY \
            https://example.com/cat.png https://i.redd.it/ (empty) \
            https://external-preview.redd.it/x.jpg?s=1 https://i.redd.it.evil.com/x.png \
            https://matrix.redditspace.com/_matrix/client/v3/sync";
        assert!(image_links(body).is_empty(), "{:?}", image_links(body));
        assert!(image_links("").is_empty());
        assert!(image_links("https://").is_empty());
    }

    #[test]
    fn duplicates_and_trailing_punctuation() {
        let body = "https://i.redd.it/a1b2c3.png, again https://i.redd.it/a1b2c3.png. \
            <https://i.imgur.com/Zz9Yy8X.gif> \"https://i.redd.it/q.webp\"";
        assert_eq!(
            image_links(body),
            vec![
                "https://i.redd.it/a1b2c3.png",
                "https://i.imgur.com/Zz9Yy8X.gif",
                "https://i.redd.it/q.webp",
            ]
        );
    }
}
