//! The channel for viewers: `/watch` (the site's page) and `/embed` (the same player without
//! the site around it, for an iframe on another site).
//!
//! Both render the live state of the moment, so the page is right before its first event,
//! then `assets/web/watch.js` plays the program's HLS playlist and follows
//! `/api/v1/events`. Whether HLS is on is found by the player asking for the playlist: the
//! page then needs nothing from the HLS output but its address.

use axum::extract::Query;
use axum::extract::State;
use axum::extract::rejection::QueryRejection;
use axum::response::{Html, IntoResponse, Response};
use minijinja::value::merge_maps;
use minijinja::{Value, context};
use serde::Deserialize;

use super::{PageError, base_context, render};
use crate::web::AppState;
use crate::web::assets::hls_js_path;
use crate::web::live::QueueView;
use crate::web::session::WebSession;

/// The program's media playlist.
pub const PLAYLIST: &str = "/hls/program.m3u8";

/// `GET /watch`: the player starts muted (browsers allow only that without a click), with a
/// button to unmute.
pub async fn watch(State(state): State<AppState>, session: WebSession) -> Result<Response, PageError> {
    let player = Player { autoplay: true, muted: true };
    let ctx =
        merge_maps([context! { active => "watch" }, page_context(&state.live.queue(), player), base_context(&session)]);
    Ok(render("watch.html", ctx)?.into_response())
}

/// `?autoplay=1&muted=1` on `/embed`, as the site embedding it chose.
#[derive(Debug, Default, Deserialize)]
pub struct EmbedQuery {
    autoplay: Option<String>,
    muted: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Player {
    autoplay: bool,
    muted: bool,
}

impl From<EmbedQuery> for Player {
    /// Anything but a clear yes is no: an embed plays on a click and with sound unless asked.
    fn from(query: EmbedQuery) -> Self {
        let yes = |v: Option<String>| matches!(v.as_deref(), Some("1" | "true" | "yes"));
        Self { autoplay: yes(query.autoplay), muted: yes(query.muted) }
    }
}

/// `GET /embed`.
pub async fn embed(
    State(state): State<AppState>,
    query: Result<Query<EmbedQuery>, QueryRejection>,
) -> Result<Html<String>, PageError> {
    let player = Player::from(query.map(|Query(q)| q).unwrap_or_default());
    render("embed.html", page_context(&state.live.queue(), player))
}

fn page_context(live: &QueueView, player: Player) -> Value {
    let lineup = &live.lineup;
    // The lineup lists the DJ on air first.
    let waiting: Vec<&String> = lineup.stream_queue.iter().skip(usize::from(lineup.on_air.is_some())).collect();
    let track = lineup.now.as_ref().and_then(|n| n.track.as_ref());
    let picture = lineup.now.as_ref().and_then(|n| n.picture_url.as_deref());
    context! {
        on_air => lineup.on_air,
        queue => waiting,
        track => track.map(|t| context! { artist => t.artist, title => t.title }),
        picture => picture,
        // Our own addresses: left as they are (autoescape would write `/` as `&#x2f;`).
        playlist => Value::from_safe_string(PLAYLIST.to_owned()),
        hls_js => Value::from_safe_string(hls_js_path()),
        autoplay => player.autoplay,
        muted => player.muted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::live::{Lineup, NowPlaying, TrackView};

    fn query(autoplay: Option<&str>, muted: Option<&str>) -> Player {
        Player::from(EmbedQuery { autoplay: autoplay.map(str::to_owned), muted: muted.map(str::to_owned) })
    }

    #[test]
    fn embeds_play_on_a_click_with_sound_unless_asked_otherwise() {
        assert_eq!(query(None, None), Player { autoplay: false, muted: false });
        assert_eq!(query(Some("1"), Some("1")), Player { autoplay: true, muted: true });
        assert_eq!(query(Some("true"), Some("0")), Player { autoplay: true, muted: false });
        assert_eq!(query(Some("please"), None), Player { autoplay: false, muted: false });
    }

    #[test]
    fn the_page_shows_the_lineup_of_the_moment_without_the_dj_on_air_in_the_queue() {
        let live = QueueView {
            lineup: Lineup {
                on_air: Some("Alice".into()),
                stream_queue: vec!["Alice".into(), "Bob".into(), "<Carol>".into()],
                now: Some(NowPlaying {
                    dj_name: "Alice".into(),
                    picture_url: None,
                    track: Some(TrackView {
                        artist: "Moodymann".into(),
                        title: "Shades of Jae".into(),
                        source: crate::store::TrackSource::Dj,
                    }),
                }),
                ..Lineup::default()
            },
            remaining_time: 95,
        };
        let html = |player| render("embed.html", page_context(&live, player)).unwrap().0;
        let watch = render("watch.html", page_context(&live, Player { autoplay: true, muted: true })).unwrap().0;
        assert!(watch.contains("<li>Bob</li><li>&lt;Carol&gt;</li>"), "escaped, Alice not queued: {watch}");
        let page = html(Player { autoplay: true, muted: true });
        assert!(page.contains(r#"id="watch-on-air">Alice<"#), "{page}");
        assert!(page.contains("Moodymann – Shades of Jae"), "{page}");
        assert!(page.contains(r#"data-src="/hls/program.m3u8""#) && page.contains(&hls_js_path()), "{page}");
        assert!(page.contains(r#"data-autoplay="1""#) && page.contains(r#"data-muted="1""#), "{page}");
        let page = html(Player { autoplay: false, muted: false });
        assert!(page.contains(r#"data-autoplay="0""#) && page.contains(r#"data-muted="0""#), "{page}");

        let nobody =
            render("embed.html", page_context(&QueueView::default(), Player { autoplay: false, muted: false }))
                .unwrap()
                .0;
        assert!(nobody.contains("the slate is showing"), "{nobody}");
    }
}
