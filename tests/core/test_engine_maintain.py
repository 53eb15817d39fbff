from stixbridge.engine import RunSummary
from tests.core.helpers import indicator, write_bundle
from tests.core.test_engine import RecordingSink, make_engine


class MaintainedSink(RecordingSink):
    def __init__(self):
        super().__init__()
        self.maintained = 0

    def maintain(self):
        self.maintained += 1


def test_engine_maintains_up_to_date_sink(tmp_path):
    feed = write_bundle(tmp_path / "feed" / "a.json", [indicator(1, "[ipv4-addr:value = '198.51.100.1']")])
    sink = MaintainedSink()
    engine = make_engine(tmp_path, feed, sink)
    engine.sync()
    assert sink.maintained == 0

    engine.push(RunSummary())
    assert sink.maintained == 1
