//! `meldkluis fingerprint-sheet`: a printable page with every counsellor's
//! card fingerprint (protocol.md §10.1), for the organisation to publish out
//! of band — on the intranet, on a poster — so staff can compare it with the
//! fingerprint the report form computes. If an operator swaps a card, the
//! form shows another fingerprint than the sheet. The page is one
//! self-contained HTML file (no script, no external resource) and every
//! text from a card is escaped.

use std::collections::BTreeMap;

use crate::format::card::{Card, CounsellorKind};

use super::handlers::pages::escape_html as escape;

/// The sheet's words, one table per language (Dutch first).
pub struct Texts {
    pub lang: &'static str,
    pub title: &'static str,
    /// `{0}`: the organisation's name.
    pub heading: &'static str,
    pub intro: &'static str,
    pub compare: &'static str,
    pub differs: &'static str,
    pub name: &'static str,
    pub kind: &'static str,
    pub organisation: &'static str,
    pub fingerprint: &'static str,
    pub internal: &'static str,
    pub external: &'static str,
    /// `{0}`: the day the sheet was made.
    pub made: &'static str,
}

pub const NL: Texts = Texts {
    lang: "nl",
    title: "Vingerafdrukken van de vertrouwenspersonen",
    heading: "Vingerafdrukken van de vertrouwenspersonen van {0}",
    intro: "Op het meldformulier van Meldkluis staat bij elke vertrouwenspersoon een \
            vingerafdruk: zes groepen van vijf cijfers. Uw browser berekent die zelf uit \
            de gegevens en de sleutel waarmee uw melding wordt versleuteld.",
    compare: "Vergelijk voordat u iets verstuurt de vingerafdruk op het formulier met deze \
              lijst, groep voor groep. Zijn ze gelijk, dan gaat uw melding alleen naar die \
              vertrouwenspersoon.",
    differs: "Wijkt er ook maar één cijfer af, verstuur dan niets: neem op een andere manier \
              contact op met de vertrouwenspersoon, of met het Huis voor Klokkenluiders.",
    name: "Naam",
    kind: "Soort",
    organisation: "Organisatie",
    fingerprint: "Vingerafdruk",
    internal: "intern",
    external: "extern",
    made: "Gemaakt op {0} met meldkluis fingerprint-sheet.",
};

pub const EN: Texts = Texts {
    lang: "en",
    title: "Fingerprints of the confidential counsellors",
    heading: "Fingerprints of the confidential counsellors of {0}",
    intro: "On the Meldkluis report form, next to each counsellor, is a fingerprint: six \
            groups of five digits. Your browser computes it itself from the details and the \
            key your report is encrypted to.",
    compare: "Before you send anything, compare the fingerprint on the form with this list, \
              group by group. If they are the same, your report goes to that counsellor only.",
    differs: "If even one digit differs, send nothing: contact the counsellor another way, or \
              the Dutch Whistleblowers Authority (Huis voor Klokkenluiders).",
    name: "Name",
    kind: "Kind",
    organisation: "Organisation",
    fingerprint: "Fingerprint",
    internal: "internal",
    external: "external",
    made: "Made on {0} with meldkluis fingerprint-sheet.",
};

/// Why no sheet was made.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SheetError {
    /// `--org` names an organisation none of the cards serves.
    #[error("no card serves the organisation {0:?} (the cards serve: {1})")]
    UnknownOrganisation(String, String),
    /// `keys/` holds no card.
    #[error("there is no card to print")]
    NoCards,
}

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,Arial,sans-serif;color:#000;\
background:#fff;margin:2rem;line-height:1.45;max-width:60rem}\
h1{font-size:1.6rem}\
section+section{break-before:page;page-break-before:always;margin-top:3rem}\
table{border-collapse:collapse;width:100%;margin:1.5rem 0}\
th,td{border:1px solid #000;padding:.5rem .6rem;text-align:left;vertical-align:top}\
.fp{font-family:ui-monospace,Menlo,Consolas,\"Liberation Mono\",monospace;font-size:1.2rem;\
font-weight:700;font-variant-numeric:tabular-nums}\
.fp span{white-space:nowrap}\
.made{font-size:.9rem;color:#333}\
@media print{body{margin:0}}";

/// The sheet for the organisations of `cards` (or only `only`), in one
/// language: one section per organisation, each on its own printed page.
/// `names` gives an organisation's display name (the configured one); else
/// the name on its first card.
pub fn render(
    cards: &BTreeMap<String, Card>,
    names: &BTreeMap<String, String>,
    only: Option<&str>,
    texts: &Texts,
    day: &str,
) -> Result<String, SheetError> {
    if cards.is_empty() {
        return Err(SheetError::NoCards);
    }
    let mut by_org: BTreeMap<String, Vec<&Card>> = BTreeMap::new();
    for card in cards.values() {
        by_org.entry(card.org_id()).or_default().push(card);
    }
    if let Some(org) = only {
        if !by_org.contains_key(org) {
            let known: Vec<&str> = by_org.keys().map(String::as_str).collect();
            return Err(SheetError::UnknownOrganisation(
                org.to_string(),
                known.join(", "),
            ));
        }
        by_org.retain(|id, _| id == org);
    }
    let mut html = format!(
        "<!doctype html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        texts.lang,
        escape(texts.title)
    );
    for (org, members) in &by_org {
        let name = names
            .get(org)
            .cloned()
            .unwrap_or_else(|| members[0].organisation.clone());
        html.push_str(&format!(
            "<section>\n<h1>{}</h1>\n<p>{}</p>\n<p><strong>{}</strong></p>\n<p>{}</p>\n\
             <table>\n<thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th>\
             <th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead>\n<tbody>\n",
            escape(&texts.heading.replace("{0}", &name)),
            escape(texts.intro),
            escape(texts.compare),
            escape(texts.differs),
            escape(texts.name),
            escape(texts.kind),
            escape(texts.organisation),
            escape(texts.fingerprint),
        ));
        for card in members {
            let kind = match card.kind {
                CounsellorKind::Internal => texts.internal,
                CounsellorKind::External => texts.external,
            };
            // Each group in its own span that does not wrap: a line breaks
            // only between groups, on paper as on the form.
            let groups: Vec<String> = card
                .fingerprint()
                .split(' ')
                .map(|group| format!("<span>{group}</span>"))
                .collect();
            let lang = card.lang.as_deref().unwrap_or("");
            html.push_str(&format!(
                "<tr><td>{}</td><td>{kind}</td><td lang=\"{}\">{}</td><td class=\"fp\">{}</td></tr>\n",
                escape(&card.name),
                escape(lang),
                escape(&card.organisation),
                groups.join(" "),
            ));
        }
        html.push_str(&format!(
            "</tbody>\n</table>\n<p class=\"made\">{}</p>\n</section>\n",
            escape(&texts.made.replace("{0}", day))
        ));
    }
    html.push_str("</body>\n</html>\n");
    Ok(html)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn card(id: &str, org: &str, name: &str) -> Card {
        let signing = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        Card {
            format: "meldkluis-card".into(),
            v: 1,
            id: id.into(),
            name: name.into(),
            organisation: "Ministerie van Voorbeeldzaken".into(),
            org: Some(org.into()),
            kind: CounsellorKind::Internal,
            description: String::new(),
            lang: None,
            age_recipient: "age1xmwwc06ly3ee5rytxm9mflaz2u56jjj36s0mypdrwsvlul66mv4q47ryef".into(),
            signing_key: base64::engine::general_purpose::STANDARD
                .encode(signing.verifying_key().as_bytes()),
        }
    }

    #[test]
    fn escapes_card_text_and_loads_nothing() {
        let hostile = card("vp-a", "bzk", "<script>alert(1)</script>\"' & <img src=x>");
        let fingerprint = hostile.fingerprint();
        let cards = BTreeMap::from([("vp-a".to_string(), hostile)]);
        let html = render(&cards, &BTreeMap::new(), None, &NL, "2026-12-02").unwrap();
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains(
                "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39; &amp; &lt;img src=x&gt;"
            )
        );
        for group in fingerprint.split(' ') {
            assert!(html.contains(&format!("<span>{group}</span>")), "{html}");
        }
        // Outside the escaped name, nothing that could load anything.
        let rest = html.replace("&lt;img src=x&gt;", "");
        for external in ["src=", "href=", "url(", "@import", "http"] {
            assert!(!rest.contains(external), "{external}: {html}");
        }
    }

    #[test]
    fn one_section_per_organisation_and_unknown_ones_refused() {
        let cards = BTreeMap::from([
            ("vp-a".to_string(), card("vp-a", "bzk", "A")),
            ("vp-b".to_string(), card("vp-b", "jenv", "B")),
        ]);
        let names = BTreeMap::from([("jenv".to_string(), "Ministerie van JenV".to_string())]);
        let both = render(&cards, &names, None, &EN, "2026-12-02").unwrap();
        assert_eq!(both.matches("<section>").count(), 2);
        assert!(both.contains("of Ministerie van JenV"), "{both}");
        let one = render(&cards, &names, Some("bzk"), &NL, "2026-12-02").unwrap();
        assert_eq!(one.matches("<section>").count(), 1);
        let shown = |card: &Card| {
            card.fingerprint()
                .split(' ')
                .map(|group| format!("<span>{group}</span>"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert!(one.contains(&shown(&cards["vp-a"])), "{one}");
        assert!(!one.contains(&shown(&cards["vp-b"])), "{one}");
        assert_eq!(
            render(&cards, &names, Some("nope"), &NL, "2026-12-02"),
            Err(SheetError::UnknownOrganisation(
                "nope".into(),
                "bzk, jenv".into()
            ))
        );
        assert_eq!(
            render(&BTreeMap::new(), &names, None, &NL, "x"),
            Err(SheetError::NoCards)
        );
    }
}
