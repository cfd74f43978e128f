"""Small text files and folder listings on any file system Spark can reach (local, DBFS,
volumes, cloud), on a classic session and over Spark Connect.

A classic session uses Hadoop's FileSystem through the JVM: one call, no Spark job. A Spark
Connect client has no JVM, so it goes through the DataFrame API, which the server runs:
``binaryFile`` listings (file names only; contents are not read) and the ``text`` source.
The text source writes a folder, not a file: over Connect ``write_text(path)`` leaves a
folder ``path`` holding one part file, ending with a newline. ``read_text`` reads either
form on both kinds of session, so a checkpoint written by one can be read by the other.
"""

from __future__ import annotations

from pyspark.sql import functions as F


def _connect(spark) -> bool:
    from lakeline.session import is_connect

    return is_connect(spark)


def _fs(spark, path: str):
    jpath = spark._jvm.org.apache.hadoop.fs.Path(path)
    return jpath, jpath.getFileSystem(spark._jsc.hadoopConfiguration())


def _visible(name: str) -> bool:
    """Not a hidden or metadata file (``.x``, ``_SUCCESS``), as Spark's file sources see it."""
    return not name.startswith((".", "_"))


def _path_not_found(exc: Exception) -> bool:
    error_class = getattr(exc, "getErrorClass", lambda: None)()
    return error_class == "PATH_NOT_FOUND" or "PATH_NOT_FOUND" in str(exc)


def _text_over_connect(spark, path: str) -> str | None:
    from pyspark.errors import AnalysisException

    try:
        rows = (
            spark.read.text(path, wholetext=True)
            .select("value", F.col("_metadata.file_name").alias("file"))
            .collect()
        )
    except AnalysisException as exc:
        if _path_not_found(exc):
            return None
        raise
    return "".join(r.value for r in sorted(rows, key=lambda r: r.file))


def read_text(spark, path: str) -> str | None:
    """The file's text (or that of the part files of a folder ``write_text`` wrote over
    Spark Connect), or None when it does not exist."""
    if _connect(spark):
        return _text_over_connect(spark, path)
    jpath, fs = _fs(spark, path)
    if not fs.exists(jpath):
        return None
    if fs.getFileStatus(jpath).isDirectory():
        parts = sorted(s.getPath() for s in fs.listStatus(jpath) if _visible(s.getPath().getName()))
    else:
        parts = [jpath]
    texts = []
    for part in parts:
        stream = fs.open(part)
        try:
            texts.append(spark._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
        finally:
            stream.close()
    return "".join(texts)


def write_text(spark, path: str, text: str) -> None:
    """Write ``text`` at ``path``, replacing what is there (over Spark Connect: a folder)."""
    if _connect(spark):
        frame = spark.createDataFrame([(text,)], "value string").coalesce(1)
        frame.write.mode("overwrite").text(path)
        return
    jpath, fs = _fs(spark, path)
    if fs.exists(jpath) and fs.getFileStatus(jpath).isDirectory():
        fs.delete(jpath, True)  # written over Spark Connect before
    out = fs.create(jpath, True)
    try:
        out.write(bytearray(text.encode()))
    finally:
        out.close()


def _listing(spark, folder: str, recursive: bool = False):
    """The paths of ``folder``'s files as Spark's file sources list them (``binaryFile``,
    whose contents are not read when not selected); None when the folder does not exist."""
    from pyspark.errors import AnalysisException

    reader = spark.read.format("binaryFile")
    if recursive:
        reader = reader.option("recursiveFileLookup", "true")
    frame = reader.load(folder).select("path")
    try:
        frame.schema  # noqa: B018 - analysis lists the folder: PATH_NOT_FOUND is raised here
    except AnalysisException as exc:
        if _path_not_found(exc):
            return None
        raise
    return frame


def has_files(spark, folder: str) -> bool:
    """True when ``folder`` exists and holds something that is not hidden (``.x``, ``_x``).

    Over Spark Connect: a file, at any depth."""
    if _connect(spark):
        listing = _listing(spark, folder, recursive=True)
        return listing is not None and bool(listing.limit(1).collect())
    jpath, fs = _fs(spark, folder)
    if not fs.exists(jpath):
        return False
    return any(_visible(s.getPath().getName()) for s in fs.listStatus(jpath))


def list_files(spark, folder: str) -> list[str]:
    """The URIs of the visible files in ``folder``, sorted (none when it does not exist): on
    a classic session those directly in it; over Spark Connect those the file source reads
    (partition folders included)."""
    if _connect(spark):
        listing = _listing(spark, folder)
        return sorted(r.path for r in listing.collect()) if listing is not None else []
    jpath, fs = _fs(spark, folder)
    if not fs.exists(jpath):
        return []
    found = []
    for status in fs.listStatus(jpath):
        if status.isFile() and _visible(status.getPath().getName()):
            found.append(status.getPath().toString())
    return sorted(found)


def delete_folder(spark, folder: str) -> None:
    """Delete ``folder`` and everything in it, if it exists.

    Over Spark Connect there is no delete: the folder is overwritten with an empty text
    dataset (Spark's file writer deletes what is there first), which leaves only a
    ``_SUCCESS`` marker that Spark's file sources and a stream's checkpoint ignore."""
    if _connect(spark):
        empty = spark.createDataFrame([], "value string").coalesce(1)
        empty.write.mode("overwrite").text(folder)
        return
    jpath, fs = _fs(spark, folder)
    if fs.exists(jpath):
        fs.delete(jpath, True)
