"""Reading a registry file the way people make them: CSV in UTF-8 (with or without BOM), CSV saved by
Excel in China (GB18030/GBK, detected and logged), Excel's "Unicode text" (UTF-16, tab-separated), and
``.xlsx`` workbooks directly (the first sheet; openpyxl). Every error names the file, the line and the fix.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("fumewatch.registry")

Rows = Iterator[tuple[int, dict[str, str]]]  # (line or sheet row number, column -> text)

#: How to make a file fumewatch reads, for error messages.
FIX = 'in Excel: "Save As" > "CSV UTF-8 (Comma delimited)", or save the workbook as .xlsx and use it directly'


class RegistryFileError(ValueError):
    pass


def read_table(path: Path) -> tuple[list[str], Rows]:
    """(header, rows) of the registry at ``path``; :class:`RegistryFileError` names file, line and fix."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return _xlsx(path)
    if path.suffix.lower() == ".xls":
        raise RegistryFileError(f"{path}: .xls (Excel 97-2003) is not read; {FIX}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RegistryFileError(f"cannot read registry {path}: {exc.strerror}") from exc
    return csv_table(decode(raw, path), str(path))


def decode(raw: bytes, path: Path | str) -> str:
    """The registry's text: UTF-8 (BOM or not), UTF-16 with BOM, else GB18030 (a superset of GBK),
    which is logged so an operator knows what was assumed."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as utf8_error:
        try:
            text = raw.decode("gb18030")
        except UnicodeDecodeError:
            line = raw[: utf8_error.start].count(b"\n") + 1
            raise RegistryFileError(
                f"{path}:{line}: neither UTF-8 nor GB18030/GBK (byte {utf8_error.start}); {FIX}"
            ) from None
        log.info("event=registry_encoding path=%s encoding=gb18030 (not UTF-8: read as GB18030/GBK)", path)
        return text


def csv_table(text: str, source: str) -> tuple[list[str], Rows]:
    text = text.removeprefix("\ufeff")
    first = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first and "," not in first else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    header = [h.strip() for h in (reader.fieldnames or [])]

    def rows() -> Rows:
        for lineno, row in enumerate(reader, start=2):
            yield lineno, {(k or "").strip(): (v or "").strip() for k, v in row.items() if k}

    return header, rows()


def _cell(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))  # 4.0 stove heads typed in Excel
    return str(v).strip()


def _xlsx(path: Path) -> tuple[list[str], Rows]:
    try:
        from openpyxl import load_workbook

        wb = load_workbook(path, read_only=True, data_only=True)
    except OSError as exc:
        raise RegistryFileError(f"cannot read registry {path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for a file that is not a workbook
        raise RegistryFileError(
            f"{path}: not a readable .xlsx workbook ({type(exc).__name__}); {FIX}"
        ) from None
    ws = wb.worksheets[0]
    it = ws.iter_rows(values_only=True)
    try:
        header = [_cell(h) for h in next(it)]
    except StopIteration:
        header = []

    def rows() -> Rows:
        try:
            for n, values in enumerate(it, start=2):
                yield n, {h: _cell(v) for h, v in zip(header, values, strict=False) if h}
        finally:
            wb.close()

    return header, rows()
