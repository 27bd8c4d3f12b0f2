//! Overlays for OBS browser sources (`/overlay/{name}`) and the page that lists them
//! (`/overlays`).
//!
//! Overlays are public: no login, nothing secret, a transparent background so OBS composites
//! them over the video. Each is rendered with the current live state, so it shows the right
//! thing before the first event, then follows `/api/v1/events` (reconnecting by itself when
//! the server restarts). Query options: `align=left|center|right`, `scale=0.25…4`, and for
//! the clock `tz=Area/City`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Value, context};
use serde::Deserialize;

use super::AppState;
use super::live::QueueView;
use super::pages::{PageError, base_context, format_duration, render};
use super::session::WebSession;

/// One overlay: its path under `/overlay/`, what it shows, and a browser-source size that
/// fits it at scale 1.
pub struct Overlay {
    pub name: &'static str,
    pub title: &'static str,
    pub about: &'static str,
    pub width: u32,
    pub height: u32,
}

/// Every overlay, in the order the index page lists them.
pub const OVERLAYS: &[Overlay] = &[
    Overlay {
        name: "now",
        title: "On air now",
        about: "The DJ on air: name, picture, the track they announced, time left in the set.",
        width: 900,
        height: 200,
    },
    Overlay {
        name: "next",
        title: "Up next",
        about: "Who goes on air after the current set.",
        width: 700,
        height: 120,
    },
    Overlay {
        name: "queue",
        title: "Queue",
        about: "Everybody in line, the DJ on air first.",
        width: 500,
        height: 600,
    },
    Overlay { name: "timer", title: "Timer", about: "Time left in the current set.", width: 400, height: 160 },
    Overlay {
        name: "clock",
        title: "Clock",
        about: "The time of day, in the viewer's time zone or the one given with ?tz=.",
        width: 400,
        height: 160,
    },
];

/// The query options, as typed by whoever set up the browser source.
#[derive(Debug, Default, Deserialize)]
pub struct OverlayQuery {
    align: Option<String>,
    scale: Option<String>,
    tz: Option<String>,
}

/// The options an overlay applies; anything unrecognised falls back to the default, so a
/// typo in OBS still shows the overlay.
#[derive(Debug, PartialEq)]
struct Options {
    align: &'static str,
    scale: f64,
    tz: Option<String>,
}

const SCALES: std::ops::RangeInclusive<f64> = 0.25..=4.0;

impl From<OverlayQuery> for Options {
    fn from(query: OverlayQuery) -> Self {
        let align = match query.align.as_deref() {
            Some("center") => "center",
            Some("right") => "right",
            _ => "left",
        };
        let scale = query.scale.and_then(|s| s.parse::<f64>().ok()).filter(|s| SCALES.contains(s)).unwrap_or(1.0);
        // The browser validates the zone; here only its shape, to keep the markup tidy.
        let tz = query.tz.filter(|tz| {
            (1..=64).contains(&tz.len()) && tz.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b))
        });
        Self { align, scale, tz }
    }
}

/// `GET /overlay/{name}`.
pub async fn overlay(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<OverlayQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let Some(overlay) = OVERLAYS.iter().find(|o| o.name == name) else {
        return Err(PageError::new(axum::http::StatusCode::NOT_FOUND, format!("There is no overlay named {name}.")));
    };
    let options = Options::from(query.map(|Query(q)| q).unwrap_or_default());
    let booked = if matches!(overlay.name, "next" | "queue") { booked(&state) } else { Vec::new() };
    let html = page(overlay, &options, &state.live.queue(), &booked)?;
    let mut response = html.into_response();
    // The page carries the state of the moment it was rendered.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The next booked slots within a day, for the queue and next overlays.
fn booked(state: &AppState) -> Vec<Value> {
    const SHOWN: usize = 3;
    super::timetable::upcoming(state)
        .iter()
        .take(SHOWN)
        .map(|b| {
            let utc = crate::calendar::format_datetime(b.starts_at);
            let start_utc = utc.get(11..16).unwrap_or_default().to_owned();
            context! { dj_name => b.dj_name, start => b.starts_at, start_utc => start_utc }
        })
        .collect()
}

fn page(overlay: &Overlay, options: &Options, live: &QueueView, booked: &[Value]) -> Result<Html<String>, PageError> {
    render(
        &format!("overlay_{}.html", overlay.name),
        context! {
            title => overlay.title,
            kind => overlay.name,
            live => Value::from_serialize(live),
            time_left => format_duration(live.remaining_time),
            align => options.align,
            scale => options.scale,
            tz => options.tz,
            booked => booked,
        },
    )
}

/// `GET /overlays`: every overlay's URL, a live preview and how to add it to OBS.
pub async fn index(session: WebSession) -> Result<Response, PageError> {
    let overlays: Vec<_> = OVERLAYS
        .iter()
        .map(|o| {
            context! { name => o.name, title => o.title, about => o.about, width => o.width, height => o.height }
        })
        .collect();
    Ok(render("overlays.html", context! { overlays => overlays, active => "overlays", ..base_context(&session) })?
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::live::{Lineup, NowPlaying, TrackView};

    fn options(align: Option<&str>, scale: Option<&str>, tz: Option<&str>) -> Options {
        Options::from(OverlayQuery {
            align: align.map(str::to_owned),
            scale: scale.map(str::to_owned),
            tz: tz.map(str::to_owned),
        })
    }

    #[test]
    fn options_fall_back_to_defaults_rather_than_fail() {
        assert_eq!(options(None, None, None), Options { align: "left", scale: 1.0, tz: None });
        let set = options(Some("right"), Some("1.5"), Some("America/Argentina/Buenos_Aires"));
        assert_eq!(set, Options { align: "right", scale: 1.5, tz: Some("America/Argentina/Buenos_Aires".into()) });
        assert_eq!(options(Some("middle"), Some("9"), None).align, "left");
        assert_eq!(options(None, Some("9"), None).scale, 1.0, "too big");
        assert_eq!(options(None, Some("NaN"), None).scale, 1.0);
        assert_eq!(options(None, None, Some("Etc/GMT+3")).tz.as_deref(), Some("Etc/GMT+3"));
        assert_eq!(options(None, None, Some("\"><script>")).tz, None);
    }

    /// The markup inside the element with this id (no element here nests one of its kind).
    fn text_of<'a>(html: &'a str, id: &str) -> &'a str {
        let at = html.find(&format!(r#"id="{id}""#)).unwrap_or_else(|| panic!("no #{id} in {html}"));
        let tag = html[html[..at].rfind('<').unwrap() + 1..at].trim();
        let start = at + html[at..].find('>').unwrap() + 1;
        let end = start + html[start..].find(&format!("</{tag}>")).unwrap();
        &html[start..end]
    }

    #[test]
    fn overlays_render_the_state_of_the_moment() {
        let live = QueueView {
            lineup: Lineup {
                on_air: Some("Alice".into()),
                stream_queue: vec!["Alice".into(), "Bob".into()],
                now: Some(NowPlaying {
                    dj_name: "Alice".into(),
                    picture_url: Some("/pictures/0123.png".into()),
                    track: Some(TrackView {
                        artist: "Moodymann".into(),
                        title: "Shades of <Jae>".into(),
                        source: crate::store::TrackSource::Dj,
                    }),
                }),
                up_next: Some("Bob".into()),
                ..Lineup::default()
            },
            remaining_time: 95,
        };
        let booked = [context! { dj_name => "Carol", start => 1_796_076_000, start_utc => "22:00" }];
        let html = |name: &str| {
            let overlay = OVERLAYS.iter().find(|o| o.name == name).unwrap();
            page(overlay, &options(Some("right"), Some("2"), Some("Europe/Paris")), &live, &booked).unwrap().0
        };
        let now = html("now");
        assert_eq!(text_of(&now, "on-air-name"), "Alice");
        assert_eq!(text_of(&now, "on-air-track"), "Moodymann – Shades of &lt;Jae&gt;", "escaped");
        assert_eq!(text_of(&now, "on-air-time"), "1:35");
        assert!(now.contains(r#"data-seconds="95">"#), "the countdown starts from the page: {now}");
        assert!(now.contains("0123.png") && !now.contains("hidden"), "{now}");
        assert!(now.contains("align-right") && now.contains(r#"data-scale="2.0""#), "{now}");
        assert_eq!(text_of(&html("next"), "up-next-name"), "Bob");
        assert_eq!(text_of(&html("queue"), "queue-list"), "<li>Alice</li><li>Bob</li>");
        assert_eq!(text_of(&html("timer"), "timer"), "1:35");
        for name in ["next", "queue"] {
            let page = html(name);
            assert!(page.contains(r#"<li>Booked: Carol <time data-unix="1796076000">22:00</time></li>"#), "{page}");
        }
        assert!(html("clock").contains(r#"data-tz="Europe&#x2f;Paris""#));
    }
}
