"""The shared paging loop and its guard, with a toy paginator over fake responses."""

from __future__ import annotations

import json

import pytest
import requests

from airflow_provider_b1.utils.paging import MAX_EMPTY_PAGES, Page, PagingLoopError, paginate


def _response(document: dict) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = json.dumps(document).encode()
    return response


class _Cursor:
    """A toy protocol: ``{"items": [...], "next": <token or null>}``."""

    hint = "check the toy's sort order"

    def read(self, response: requests.Response) -> Page[list]:
        document = response.json()
        return Page(content=document["items"], empty=not document["items"], next=document.get("next"))


def _server(documents: list[dict]):
    sent: list = []

    def send(request):
        sent.append(request)
        return _response(documents[len(sent) - 1])

    return send, sent


def test_pages_are_followed_until_there_is_no_next_request_and_empty_ones_are_not_handed_on():
    send, sent = _server(
        [
            {"items": [1, 2], "next": "b"},
            {"items": [], "next": "c"},
            {"items": [3], "next": None},
        ]
    )
    assert list(paginate(send, _Cursor(), source="The toy", what="numbers")) == [[1, 2], [3]]
    assert sent == [None, "b", "c"]


def test_the_same_next_request_twice_stops_the_read_with_the_paginators_hint():
    send, sent = _server(
        [{"items": [1], "next": "a"}, {"items": [2], "next": "b"}, {"items": [3], "next": "a"}]
    )
    with pytest.raises(
        PagingLoopError, match="The toy sent the same next link twice while reading numbers"
    ) as caught:
        list(paginate(send, _Cursor(), source="The toy", what="numbers"))
    assert "check the toy's sort order" in str(caught.value)
    assert len(sent) == 3


def test_empty_pages_in_a_row_that_still_point_further_stop_the_read():
    send, sent = _server([{"items": [], "next": f"p{i}"} for i in range(10)])
    with pytest.raises(PagingLoopError, match=f"{MAX_EMPTY_PAGES} empty pages of numbers in a row"):
        list(paginate(send, _Cursor(), source="The toy", what="numbers"))
    assert len(sent) == MAX_EMPTY_PAGES


def test_an_empty_page_between_full_ones_resets_the_count():
    documents = []
    for i in range(4):
        documents += [{"items": [], "next": f"e{i}a"}, {"items": [], "next": f"e{i}b"}]
        documents.append({"items": [i], "next": f"f{i}" if i < 3 else None})
    send, _ = _server(documents)
    assert list(paginate(send, _Cursor(), source="The toy", what="numbers")) == [[0], [1], [2], [3]]


def test_the_page_cap_refuses_to_read_on():
    send, sent = _server([{"items": [i], "next": f"p{i}"} for i in range(10)])
    pages = paginate(send, _Cursor(), source="The toy", what="numbers", max_pages=4)
    with pytest.raises(PagingLoopError, match="after 4, the most this read may take"):
        for _ in pages:
            pass
    assert len(sent) == 4


def test_a_hook_raises_its_own_error_class():
    class ToyError(Exception):
        pass

    send, _ = _server([{"items": [1], "next": "a"}, {"items": [2], "next": "a"}])
    with pytest.raises(ToyError, match="same next link twice"):
        list(paginate(send, _Cursor(), source="The toy", what="numbers", error=ToyError))


def test_nothing_is_sent_before_the_first_page_is_asked_for():
    send, sent = _server([{"items": [1], "next": None}])
    pages = paginate(send, _Cursor(), source="The toy", what="numbers")
    assert sent == []
    assert next(pages) == [1]
