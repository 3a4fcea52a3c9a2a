"""Widgets of the Admin page: people, image styles and brand voices. Each form calls one
service, which checks the caller is an admin and records what changed; the result is said
on the next run (a flash), a refusal next to the form."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import streamlit as st

from webapp.errors import AtelierError
from webapp.image_presets import ASPECTS, LOCKABLE
from webapp.services.people import Account
from webapp.ui.session import flash
from webapp.ui.widgets import show_error
from webapp.users import User

NEW = ""  # the "new item" choice of a picker
LOCK_LABELS = {"negative_prompt": "Negative prompt", "aspect": "Shape", "lora": "LoRA"}
PERSON_LABELS = {
    "login": "Sign-in name",
    "display_name": "Display name",
    "email": "E-mail",
    "password": "Password",
    "role": "Role",
}


def status_of(account: Account) -> str:
    if account.disabled:
        return "disabled"
    if account.locked_until is not None and account.locked_until > datetime.now(UTC):
        return f"locked until {account.locked_until:%H:%M} UTC"
    return "active" if account.has_password else "no password (sign-on, or not set yet)"


def people_table(people: list[Account]) -> None:
    """Everyone, shown literally (a table never reads a name as markdown or HTML)."""
    st.dataframe(
        [
            {
                "Sign-in name": a.login,
                "Display name": a.display_name,
                "E-mail": a.email or "",
                "Role": a.role,
                "Status": status_of(a),
                "Since": a.created.strftime("%Y-%m-%d"),
            }
            for a in people
        ],
        hide_index=True,
    )


def submit(action: Callable[[], object], done: str, slot, labels: dict[str, str]) -> bool:
    """Run one service call from a form; True if it went through (said on the next run)."""
    try:
        action()
    except AtelierError as error:
        with slot.container():
            show_error(error, labels)
        return False
    flash("success", done)
    return True


def two_passwords(key: str) -> str | None:
    """A password typed twice; None (with a message) if they differ."""
    first = st.text_input("Password", type="password", key=f"{key}-password")
    again = st.text_input("The same password again", type="password", key=f"{key}-again")
    if first != again:
        st.error("The two passwords differ.", icon=":material/error:")
        return None
    return first


def add_person_form(accounts, user: User, sign_in_mode: str) -> None:
    if sign_in_mode != "accounts":
        st.caption(
            f"Sign-in mode is {sign_in_mode}: people added here sign in only when the mode is "
            "accounts. With single sign-on or a proxy, people appear at their first sign-in."
        )
    with st.form("add-person", clear_on_submit=False):
        login = st.text_input("Sign-in name", placeholder="ada.lovelace")
        display = st.text_input("Display name", placeholder="Ada Lovelace")
        email = st.text_input("E-mail (optional)")
        role = st.selectbox("Role", ["member", "admin"])
        password = two_passwords("add")
        slot = st.empty()
        if st.form_submit_button("Add person", icon=":material/person_add:") and password:
            added = submit(
                lambda: accounts.add_person(
                    user, login, password, display_name=display or None, email=email, role=role
                ),
                f"Added {login} ({role}).",
                slot,
                PERSON_LABELS,
            )
            if added:
                st.rerun()


def manage_person(accounts, user: User, people: list[Account]) -> None:
    if not people:
        return
    login = st.selectbox("Person", [a.login for a in people], key="admin-person")
    account = next(a for a in people if a.login == login)
    slot = st.empty()

    def run(action: Callable[[], object], done: str) -> None:
        if submit(action, done, slot, PERSON_LABELS):
            st.rerun()

    left, middle, right = st.columns(3)
    if account.disabled:
        if left.button("Enable", icon=":material/check_circle:", width="stretch"):
            run(lambda: accounts.set_disabled(user, login, False), f"Enabled {login}.")
    elif left.button("Disable", icon=":material/block:", width="stretch"):
        run(
            lambda: accounts.set_disabled(user, login, True),
            f"Disabled {login}; their sessions have ended.",
        )
    if middle.button("Unlock", icon=":material/lock_open:", width="stretch"):
        run(lambda: accounts.unlock(user, login), f"Unlocked {login}.")
    other = "member" if account.is_admin else "admin"
    if right.button(f"Make {other}", icon=":material/admin_panel_settings:", width="stretch"):
        run(lambda: accounts.set_role(user, login, other), f"{login} is now {other}.")
    with st.form("reset-password"):
        st.caption(f"A new password for {login} ends all of their sessions.")
        password = two_passwords("reset")
        if st.form_submit_button("Set new password", icon=":material/password:") and password:
            run(
                lambda: accounts.reset_password(user, login, password),
                f"New password set for {login}; their sessions have ended.",
            )


def pick(label: str, items: dict, key: str) -> str:
    names = {item_id: item.name for item_id, item in items.items()}
    return st.selectbox(
        label,
        [NEW, *names],
        format_func=lambda i: "➕ New…" if i == NEW else f"{names[i]} ({i})",
        key=key,
    )


def style_form(kits, user: User, styles: dict, loras: list[str]) -> None:
    chosen = pick("Style", styles, "admin-style")
    style = styles.get(chosen)
    key = f"style-{chosen or 'new'}"
    with st.form(key):
        style_id = st.text_input("File name (id)", chosen, disabled=bool(chosen), key=f"{key}-id")
        name = st.text_input("Name", style.name if style else "", key=f"{key}-name")
        prompt = st.text_area(
            "Prompt template ({prompt} is where the person's words go)",
            style.prompt if style else "{prompt}, ",
            key=f"{key}-prompt",
        )
        negative = st.text_area(
            "Negative prompt", style.negative_prompt if style else "", key=f"{key}-negative"
        )
        aspect = st.selectbox(
            "Shape", ASPECTS, index=ASPECTS.index(style.aspect) if style else 0, key=f"{key}-aspect"
        )
        lora_options = ["", *loras]
        lora = st.selectbox(
            "LoRA",
            lora_options,
            index=lora_options.index(style.lora) if style and style.lora in loras else 0,
            format_func=lambda n: n or "none",
            key=f"{key}-lora",
        )
        weight = st.number_input(
            "LoRA weight",
            -2.0,
            2.0,
            style.lora_weight if style else 1.0,
            0.05,
            key=f"{key}-weight",
        )
        locked = st.multiselect(
            "Locked: members cannot change these",
            LOCKABLE,
            default=list(style.locked) if style else [],
            format_func=LOCK_LABELS.get,
            key=f"{key}-locked",
        )
        slot = st.empty()
        if st.form_submit_button("Save style", icon=":material/save:") and submit(
            lambda: kits.save_style(
                user,
                style_id,
                name=name,
                prompt=prompt,
                negative_prompt=negative,
                aspect=aspect,
                lora=lora,
                lora_weight=weight,
                locked=tuple(locked),
            ),
            f"Saved the style {name}.",
            slot,
            {"id": "File name (id)", "prompt": "Prompt template", "name": "Name"},
        ):
            st.rerun()
    deleted = style and st.button("Delete this style", icon=":material/delete:", key="del-style")
    if deleted and submit(
        lambda: kits.delete_style(user, chosen), f"Deleted {style.name}.", slot, {}
    ):
        st.rerun()


def voice_form(kits, user: User, voices: dict) -> None:
    chosen = pick("Brand voice", voices, "admin-voice")
    voice = voices.get(chosen)
    key = f"voice-{chosen or 'new'}"
    with st.form(key):
        voice_id = st.text_input("File name (id)", chosen, disabled=bool(chosen), key=f"{key}-id")
        name = st.text_input("Name", voice.name if voice else "", key=f"{key}-name")
        description = st.text_area(
            "How we write", voice.description if voice else "", key=f"{key}-description"
        )
        use = st.text_area(
            "Words to use (one per line)", "\n".join(voice.use) if voice else "", key=f"{key}-use"
        )
        avoid = st.text_area(
            "Words to avoid (one per line)",
            "\n".join(voice.avoid) if voice else "",
            key=f"{key}-avoid",
        )
        examples = st.text_area(
            "Example texts (a blank line between two examples)",
            "\n\n".join(voice.examples) if voice else "",
            height=180,
            key=f"{key}-examples",
        )
        slot = st.empty()
        if st.form_submit_button("Save brand voice", icon=":material/save:") and submit(
            lambda: kits.save_voice(
                user,
                voice_id,
                name=name,
                description=description,
                use=use.splitlines(),
                avoid=avoid.splitlines(),
                examples=[e.strip() for e in examples.split("\n\n")],
            ),
            f"Saved the brand voice {name}.",
            slot,
            {"id": "File name (id)", "description": "How we write", "name": "Name"},
        ):
            st.rerun()
    deleted = voice and st.button(
        "Delete this brand voice", icon=":material/delete:", key="del-voice"
    )
    if deleted and submit(
        lambda: kits.delete_voice(user, chosen), f"Deleted {voice.name}.", slot, {}
    ):
        st.rerun()
