"""Every row of docs/reliability.md raises the error the page says it does."""

import builtins
import pathlib
import re

import pytest

PAGE = pathlib.Path(__file__).parents[1] / 'docs' / 'reliability.md'
# | `code` | `` Error: message `` |  (a double-backtick span: messages
# quote argument names in backticks)
_ROW = re.compile(r'^\| `(?P<code>[^`]+)` \| `` (?P<error>.+?) `` \|$')


def _setup() -> str:
  text = PAGE.read_text()
  match = re.search(r'```python\n(.*?)```', text, re.S)
  assert match, 'the page needs its setup block'
  return match.group(1)


def _rows() -> list[tuple[str, str]]:
  rows = []
  for line in PAGE.read_text().splitlines():
    match = _ROW.match(line)
    if match:
      rows.append((match['code'], match['error']))
  return rows


ROWS = _rows()


def test_the_page_lists_rows():
  table_rows = [
    line for line in PAGE.read_text().splitlines() if line.startswith('| `')
  ]
  assert len(ROWS) == len(table_rows) >= 30, 'a row is not in the form'


@pytest.fixture(scope='module')
def namespace():
  ns: dict = {}
  exec(_setup(), ns)  # noqa: S102 -- the page's own setup block
  return ns


@pytest.mark.parametrize('code, error', ROWS, ids=[c for c, _ in ROWS])
def test_row_raises_its_error(namespace, code, error):
  kind, _, message = error.partition(': ')
  # ValueError for a bad value; TypeError only where Python itself refuses
  # the call (a keyword-only hyperparameter passed by position).
  assert kind in ('ValueError', 'TypeError'), kind
  with pytest.raises(getattr(builtins, kind)) as info:
    eval(code, dict(namespace))  # noqa: S307
  text = str(info.value)
  assert message in text, f'{code!r} raised {text!r}'
  assert '\n' not in text.strip(), f'{code!r}: the message must be one line'
