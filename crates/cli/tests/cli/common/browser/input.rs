//! The mouse and the keyboard, as trusted input events (Input.dispatch*):
//! what a person does, so focus, :focus-visible and activation behave as
//! they would for one.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::page::{remote_text, Page};

impl Page {
    /// Waits (up to the page's timeout) until `selector` matches an element
    /// that is rendered and not covered at its centre, scrolled into view;
    /// returns that centre in viewport CSS pixels.
    fn locate(&mut self, selector: &str) -> (f64, f64) {
        let sel = serde_json::to_string(selector).expect("a string is JSON");
        let js = format!(
            "(() => {{
                const el = document.querySelector({sel});
                if (!el) return 'no element matches';
                el.scrollIntoView({{block: 'center', inline: 'center'}});
                const r = el.getBoundingClientRect();
                if (r.width === 0 || r.height === 0) return 'the element has no size';
                const x = r.left + r.width / 2, y = r.top + r.height / 2;
                const top = document.elementFromPoint(x, y);
                if (top !== el && !el.contains(top)) {{
                    return 'the element is covered by ' + (top ? top.outerHTML.slice(0, 100) : 'nothing');
                }}
                return [x, y];
            }})()"
        );
        let deadline = Instant::now() + self.timeout;
        loop {
            let state = self.eval_until(&js, deadline);
            if let Ok(Value::Array(xy)) = &state {
                if let (Some(x), Some(y)) = (xy[0].as_f64(), xy[1].as_f64()) {
                    return (x, y);
                }
            }
            if Instant::now() + Duration::from_millis(50) >= deadline {
                let why = match state {
                    Ok(v) => remote_text(&json!({"value": v})),
                    Err(e) => format!("threw {e}"),
                };
                self.fail(format!(
                    "`{selector}` not clickable after {:?}: {why}",
                    self.timeout
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Clicks the centre of the element `selector` matches with the mouse,
    /// the way a person would (trusted events; focus follows), after
    /// waiting for it to be there, visible and uncovered.
    pub fn click(&mut self, selector: &str) {
        let (x, y) = self.locate(selector);
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            let params = json!({
                "type": kind, "x": x, "y": y, "button": "left", "buttons": 1, "clickCount": 1,
            });
            self.command_ok("Input.dispatchMouseEvent", params);
        }
    }

    /// Focuses the element `selector` matches (waiting for it as `click`
    /// does) and types `text` key by key: keydown, keypress, input and
    /// keyup events; "\n" presses Enter.
    pub fn type_text(&mut self, selector: &str, text: &str) {
        let sel = serde_json::to_string(selector).expect("a string is JSON");
        self.locate(selector);
        let focused = self.eval(&format!(
            "(() => {{ const el = document.querySelector({sel}); el.focus(); \
             return document.activeElement === el; }})()"
        ));
        if focused != Value::Bool(true) {
            self.fail(format!("`{selector}` cannot take the focus"));
        }
        for c in text.chars() {
            match c {
                '\n' => self.press_key("Enter"),
                c => self.press_key(&c.to_string()),
            }
        }
    }

    /// Presses and releases a key, with modifiers before a '+':
    /// "Tab", "Shift+Tab", "Enter", "Escape", "ArrowDown", "a", "Control+a".
    /// Named keys: Tab, Enter, Escape, Backspace, Delete, Space, Home, End,
    /// PageUp, PageDown, ArrowUp/Down/Left/Right; else one character.
    pub fn press_key(&mut self, key: &str) {
        let (mods, name) = match key.rsplit_once('+') {
            Some((mods, name)) if !name.is_empty() => (mods, name),
            _ => ("", key), // "+" itself
        };
        let mut modifiers = 0;
        for m in mods.split('+').filter(|m| !m.is_empty()) {
            modifiers |= match m {
                "Alt" => 1,
                "Control" | "Ctrl" => 2,
                "Meta" => 4,
                "Shift" => 8,
                _ => panic!("unknown modifier {m:?} in key {key:?}"),
            };
        }
        // (key, code, Windows virtual key code, text it types)
        let (key_name, code, vk, text): (&str, String, u32, Option<String>) = match name {
            "Tab" => ("Tab", "Tab".into(), 9, None),
            "Enter" => ("Enter", "Enter".into(), 13, Some("\r".into())),
            "Escape" => ("Escape", "Escape".into(), 27, None),
            "Backspace" => ("Backspace", "Backspace".into(), 8, None),
            "Delete" => ("Delete", "Delete".into(), 46, None),
            "Space" | " " => (" ", "Space".into(), 32, Some(" ".into())),
            "Home" => ("Home", "Home".into(), 36, None),
            "End" => ("End", "End".into(), 35, None),
            "PageUp" => ("PageUp", "PageUp".into(), 33, None),
            "PageDown" => ("PageDown", "PageDown".into(), 34, None),
            "ArrowLeft" => ("ArrowLeft", "ArrowLeft".into(), 37, None),
            "ArrowUp" => ("ArrowUp", "ArrowUp".into(), 38, None),
            "ArrowRight" => ("ArrowRight", "ArrowRight".into(), 39, None),
            "ArrowDown" => ("ArrowDown", "ArrowDown".into(), 40, None),
            other => {
                let mut chars = other.chars();
                let (Some(c), None) = (chars.next(), chars.next()) else {
                    panic!("unknown key {other:?}");
                };
                let upper = c.to_ascii_uppercase();
                let (code, vk) = if c.is_ascii_alphabetic() {
                    (format!("Key{upper}"), upper as u32)
                } else if c.is_ascii_digit() {
                    (format!("Digit{c}"), c as u32)
                } else {
                    (String::new(), 0)
                };
                (other, code, vk, Some(c.to_string()))
            }
        };
        // With Control, Alt or Meta held a key is a shortcut, not typing.
        let text = text.filter(|_| modifiers & 0b0111 == 0);
        let down = if text.is_some() {
            "keyDown"
        } else {
            "rawKeyDown"
        };
        let mut params = json!({
            "type": down, "modifiers": modifiers, "key": key_name, "code": code,
            "windowsVirtualKeyCode": vk, "nativeVirtualKeyCode": vk,
        });
        if let Some(t) = &text {
            params["text"] = json!(t);
            params["unmodifiedText"] = json!(t);
        }
        self.command_ok("Input.dispatchKeyEvent", params.clone());
        params["type"] = json!("keyUp");
        params.as_object_mut().expect("object").remove("text");
        params
            .as_object_mut()
            .expect("object")
            .remove("unmodifiedText");
        self.command_ok("Input.dispatchKeyEvent", params);
    }
}
