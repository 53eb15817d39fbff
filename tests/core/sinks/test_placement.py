import uuid

from stixbridge.sinks.placement import Placement


def test_place_look_up_move_and_forget():
    placement = Placement()
    first = [str(uuid.uuid4()) for _ in range(3)]
    placement.place(first, 0)
    placement.place([first[0]], 5)

    assert placement.event_of(first[0]) == 5
    assert placement.event_of(first[1]) == 0
    assert placement.event_of(str(uuid.uuid4())) is None

    placement.forget([first[1], str(uuid.uuid4())])
    assert placement.event_of(first[1]) is None
    assert placement.event_of(first[2]) == 0
    placement.close()


def test_uuid_spelling_does_not_matter():
    placement = Placement()
    value = uuid.uuid4()
    placement.place([str(value).upper()], 2)
    assert placement.event_of(str(value)) == 2
    placement.close()


def test_failed_batch_leaves_earlier_places():
    placement = Placement()
    kept = str(uuid.uuid4())
    placement.place([kept], 1)
    try:
        placement.place([str(uuid.uuid4()), "not-a-uuid"], 2)
    except ValueError:
        pass
    assert placement.event_of(kept) == 1
    placement.close()
