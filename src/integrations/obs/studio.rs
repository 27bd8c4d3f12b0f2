//! The slots this task sets in OBS (the program scene, the DJ name text, each toggle): the
//! values a phase wants in them, and the requests that send only what differs.

use std::future::Future;

use obws::Client;
use obws::requests::inputs::{InputId, SetSettings};
use obws::requests::scene_items::{Id as SceneItemQuery, SetEnabled};
use obws::requests::scenes::SceneId;
use tokio::time::timeout;

use super::Obs;
use super::config::ToggleWhen;
use super::errors::{Failure, classify};
use super::phase::{Phase, QueueView};

/// One thing this task sets in OBS. What was last set is remembered per slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    Scene,
    DjName,
    Toggle(usize),
}

impl Slot {
    fn index(self) -> usize {
        match self {
            Slot::Scene => 0,
            Slot::DjName => 1,
            Slot::Toggle(i) => 2 + i,
        }
    }
}

/// The value a slot should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Value {
    Scene(String),
    Text(String),
    Shown(bool),
}

impl<Q: QueueView> Obs<Q> {
    /// The slots and the values they should have in `phase`, in the order they are sent:
    /// going on air, the name and overlays are ready before the scene switches to them;
    /// going idle, the scene switches away before they are cleared. `None`: this phase
    /// leaves the slot alone (e.g. no scene configured for it).
    fn plan(&self, phase: &Phase) -> Vec<(Slot, Option<Value>)> {
        let on_air = phase.is_on_air();
        let scene = if on_air { &self.config.on_air_scene } else { &self.config.idle_scene };
        let scene = (Slot::Scene, scene.clone().map(Value::Scene));
        let text = self.config.dj_name_source.as_ref().map(|_| {
            let name = match phase {
                Phase::OnAir { dj_name } => dj_name.clone(),
                Phase::Idle => String::new(),
            };
            (Slot::DjName, Some(Value::Text(name)))
        });
        let toggles = self
            .config
            .toggles
            .iter()
            .enumerate()
            .map(|(i, toggle)| (Slot::Toggle(i), Some(Value::Shown((toggle.on == ToggleWhen::OnAir) == on_air))));
        let mut plan = Vec::with_capacity(2 + self.config.toggles.len());
        if on_air {
            plan.extend(text);
            plan.extend(toggles);
            plan.push(scene);
        } else {
            plan.push(scene);
            plan.extend(text);
            plan.extend(toggles);
        }
        plan
    }

    /// How many slots still differ from what the phase wants.
    pub(super) fn unsynced(&self, known: &[Option<Value>]) -> usize {
        let Some(phase) = &self.phase else { return 0 };
        self.plan(phase).into_iter().filter(|(slot, want)| want.is_some() && known[slot.index()] != *want).count()
    }

    /// Sends every slot whose wanted value differs from what OBS was last given. A refusal
    /// is logged (once) and retried later; a connection failure ends the session.
    pub(super) async fn sync(&mut self, client: &Client, known: &mut [Option<Value>]) -> Result<(), String> {
        let Some(phase) = self.phase.clone() else { return Ok(()) };
        for (slot, want) in self.plan(&phase) {
            let i = slot.index();
            let Some(want) = want else {
                // This phase leaves the slot alone, so what OBS shows there may change
                // without us (the operator picks a scene): send it again next time.
                known[i] = None;
                continue;
            };
            if known[i].as_ref() == Some(&want) {
                continue;
            }
            let what = self.describe(slot, &want);
            match self.send(client, slot, &want).await {
                Ok(()) => {
                    tracing::debug!("OBS: {what}");
                    if self.refused[i].take().is_some() {
                        tracing::info!("OBS: {what}: done after earlier refusals");
                    }
                    known[i] = Some(want);
                }
                Err(Failure::Refused(why)) => {
                    let failure = Some((want, why));
                    if self.refused[i] != failure {
                        if let Some((_, why)) = &failure {
                            tracing::warn!(
                                "OBS refused to {what} ({phase}; retrying every {:?}): {why}",
                                self.tuning.probe_interval
                            );
                        }
                        self.refused[i] = failure;
                    }
                }
                Err(Failure::Connection(why)) => return Err(why),
            }
        }
        Ok(())
    }

    async fn send(&self, client: &Client, slot: Slot, value: &Value) -> Result<(), Failure> {
        match (slot, value) {
            (Slot::Scene, Value::Scene(scene)) => {
                self.request(client.scenes().set_current_program_scene(SceneId::Name(scene))).await
            }
            (Slot::DjName, Value::Text(text)) => {
                let source = self.config.dj_name_source.as_deref().unwrap_or_default();
                let settings = serde_json::json!({ "text": text });
                // overlay: keep the source's font, colour, … and change only the text.
                let request = SetSettings { input: InputId::Name(source), settings: &settings, overlay: Some(true) };
                self.request(client.inputs().set_settings(request)).await
            }
            (Slot::Toggle(i), Value::Shown(shown)) => {
                let Some(toggle) = self.config.toggles.get(i) else { return Ok(()) };
                let scene = SceneId::Name(&toggle.scene);
                // Looked up every time: ids change when the item is removed and added again
                // (or OBS loads another scene collection), and this runs only on changes.
                let query = SceneItemQuery { scene, source: &toggle.source, search_offset: None };
                let item_id = self.request(client.scene_items().id(query)).await?;
                let request = SetEnabled { scene, item_id, enabled: *shown };
                self.request(client.scene_items().set_enabled(request)).await
            }
            // plan() never pairs a slot with another kind of value.
            _ => Ok(()),
        }
    }

    async fn request<T>(&self, request: impl Future<Output = obws::error::Result<T>>) -> Result<T, Failure> {
        match timeout(self.tuning.request_timeout, request).await {
            Err(_) => Err(Failure::Connection(format!("no answer within {:?}", self.tuning.request_timeout))),
            Ok(result) => result.map_err(classify),
        }
    }

    fn describe(&self, slot: Slot, value: &Value) -> String {
        match (slot, value) {
            (Slot::Scene, Value::Scene(scene)) => format!("switch the program to scene `{scene}`"),
            (Slot::DjName, Value::Text(text)) => {
                let source = self.config.dj_name_source.as_deref().unwrap_or_default();
                format!("set the text of `{source}` to `{text}`")
            }
            (Slot::Toggle(i), Value::Shown(shown)) => match self.config.toggles.get(i) {
                Some(toggle) => {
                    format!("{} `{}` in scene `{}`", if *shown { "show" } else { "hide" }, toggle.source, toggle.scene)
                }
                None => format!("toggle #{i}"),
            },
            _ => format!("{slot:?} = {value:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::broadcast;

    use super::*;
    use crate::integrations::obs::{ObsConfig, ObsEnv, ObsFileConfig, ObsTuning};

    #[test]
    fn plans_order_and_values() {
        let file: ObsFileConfig = toml::from_str(
            "host = \"x\"\nidle_scene = \"I\"\ndj_name_source = \"N\"\n[[toggle]]\nsource = \"B\"\nscene = \"L\"",
        )
        .expect("test TOML parses");
        let config = ObsConfig::resolve(Some(&file), &ObsEnv::default()).expect("valid").expect("on");
        let (_tx, rx) = broadcast::channel(1);
        let obs = Obs {
            config,
            tuning: ObsTuning::default(),
            notices: rx,
            queue: Fixed,
            phase: None,
            refused: vec![None; 3],
        };
        let on_air = obs.plan(&Phase::OnAir { dj_name: "Alice".into() });
        assert_eq!(
            on_air,
            vec![
                (Slot::DjName, Some(Value::Text("Alice".into()))),
                (Slot::Toggle(0), Some(Value::Shown(true))),
                // No on-air scene configured: the operator's choice stands.
                (Slot::Scene, None),
            ]
        );
        let idle = obs.plan(&Phase::Idle);
        assert_eq!(
            idle,
            vec![
                (Slot::Scene, Some(Value::Scene("I".into()))),
                (Slot::DjName, Some(Value::Text(String::new()))),
                (Slot::Toggle(0), Some(Value::Shown(false))),
            ]
        );
    }

    struct Fixed;
    impl QueueView for Fixed {
        async fn phase(&self) -> Option<Phase> {
            Some(Phase::Idle)
        }
    }
}
