"""My work: the person's images and texts, searchable by words and dates, favourites,
delete, sharing; and the team's shared board. One page of items at a time."""

import streamlit as st

from webapp.ui.list_widgets import pager
from webapp.ui.resources import get_services
from webapp.ui.session import current_user
from webapp.ui.widgets import show_flash
from webapp.ui.work_widgets import (
    CONFIRM_KEY,
    PAGE_KEY,
    act,
    first_page,
    image_card,
    reopen_chat,
    text_card,
    use_image_settings,
    work_filters,
)

VIEWS = {
    "images": "My images",
    "texts": "My texts and chats",
    "board": "Shared with the team",
}
history = get_services().history
user = current_user()

st.title("My work")
show_flash()
view = st.segmented_control(
    "Show", list(VIEWS), format_func=VIEWS.get, key="work-view", on_change=first_page
)
view = view or "images"
scope = "shared" if view == "board" else "mine"
query = work_filters(scope)


def actions_for(kind: str, item) -> dict:
    """What this person may do with the item: the owner everything, an admin on the board
    may take it off; each is a callback that calls one service and says what happened."""
    mine = item.owner_id == user.id
    actions = {}
    if view == "board":
        if mine or user.is_admin:
            actions["Take off the board"] = lambda: act(
                lambda: history.remove_from_board(user, kind, item.id), "Taken off the board."
            )
        return actions
    star = "Unfavourite" if item.favourite else "Favourite"
    actions[star] = lambda: act(
        lambda: history.set_favourite(user, kind, item.id, not item.favourite),
        "Removed from favourites." if item.favourite else "Added to favourites.",
    )
    share = "Unshare" if item.shared else "Share with the team"
    actions[share] = lambda: act(
        lambda: history.set_shared(user, kind, item.id, not item.shared),
        "No longer shared." if item.shared else "Shared with the team.",
    )
    if st.session_state.get(CONFIRM_KEY) == (kind, item.id):
        actions["Delete for good"] = lambda: act(
            lambda: history.delete(user, kind, item.id), "Deleted."
        )
    else:
        actions["Delete"] = lambda: st.session_state.__setitem__(CONFIRM_KEY, (kind, item.id))
    return actions


if view in ("images", "board"):
    images = history.images(user, query)
    if view == "board":
        st.subheader("Images", divider="gray")
    if not images.items:
        st.info(
            "Nothing here yet."
            if view == "board"
            else "No images match. Make some in Image Studio."
        )
    columns = st.columns(4)
    for index, item in enumerate(images.items):
        with columns[index % 4]:
            if image_card(item, actions_for("image", item), on_board=view == "board"):
                use_image_settings(item)
    pager(images, "images", PAGE_KEY)

if view in ("texts", "board"):
    texts = history.texts(user, query)
    if view == "board":
        st.subheader("Texts and chats", divider="gray")
    if not texts.items:
        st.info("No texts match. Results and chats from Text tools appear here.")
    for item in texts.items:
        if text_card(item, actions_for("text", item), on_board=view == "board"):
            reopen_chat(item)
    pager(texts, "texts", PAGE_KEY)
