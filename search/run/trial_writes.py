"""A running trial's parameters and user attributes, written to the storage in one transaction.

Optuna writes every ``suggest_*`` and every ``set_user_attr`` as its own storage transaction: a
SQLite commit (a file sync) or a journal append (a lock, a write, a sync) each, ~2-15 ms on these
machines. A trial records two parameters per layer and ~30 attributes, so that cost grew with the
model and dwarfed a small trial. ``BufferedWrites`` holds them in memory (the ``optuna.Trial`` keeps
its own cached copy, so the trial reads what it wrote) and ``flush`` writes them together: one
transaction for an RDB storage (SQLite, PostgreSQL, MySQL), one append for a journal.

Flush before anything that needs them in the storage: after the candidate is drawn (a killed trial
is retried from its stored parameters) and before the trial ends (Optuna's ``tell`` and the
samplers' constraint functions read the attributes there).

The batched paths write Optuna's own tables and journal records (its private ``_rdb.models``,
``JournalOperation`` and session helper): Optuna has no public batch write. Any other storage,
or an Optuna without them, gets the writes one by one, as before.
"""
from __future__ import annotations

import json
import sqlite3
from typing import Any

import optuna
import sqlalchemy
from optuna.distributions import (BaseDistribution, check_distribution_compatibility,
                                  distribution_to_json, json_to_distribution)
from optuna.storages import BaseStorage, JournalStorage, RDBStorage

Param = tuple[str, float, BaseDistribution]

try:  # private Optuna names (see the module doc); without them writes go one by one
    from optuna.storages._cached_storage import _CachedStorage
    from optuna.storages._rdb import models as rdb_models
    from optuna.storages._rdb.storage import _create_scoped_session
    from optuna.storages.journal._storage import JournalOperation
    from sqlalchemy.dialects.mysql import insert as mysql_insert
    from sqlalchemy.dialects.postgresql import insert as postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert
except ImportError:  # pragma: no cover - a future Optuna
    _CachedStorage = None  # type: ignore[assignment,misc]


class BufferedWrites:
    """Stand-in for ``trial.storage`` that keeps this trial's parameter and user-attribute writes
    until ``flush``; every other call goes to the real storage.

    ``BufferedWrites(trial)`` installs itself; ``flush()`` writes what is pending (safe to call
    any number of times); ``close()`` (or leaving a ``with`` block) flushes and puts the real
    storage back.
    """

    def __init__(self, trial: optuna.Trial):
        self._trial = trial
        self._real: BaseStorage = trial.storage
        self._trial_id = trial._trial_id  # noqa: SLF001 -- the id the storage calls take
        self._params: list[Param] = []
        self._attrs: dict[str, Any] = {}
        trial.storage = self  # type: ignore[assignment]

    def set_trial_param(self, trial_id: int, name: str, value: float,
                        distribution: BaseDistribution) -> None:
        if trial_id != self._trial_id:
            self._real.set_trial_param(trial_id, name, value, distribution)
        else:
            self._params.append((name, value, distribution))

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        if trial_id != self._trial_id:
            self._real.set_trial_user_attr(trial_id, key, value)
        else:
            self._attrs[key] = value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def flush(self) -> None:
        """Write the pending parameters and attributes (one transaction where possible)."""
        params, attrs = self._params, self._attrs
        self._params, self._attrs = [], {}
        if params or attrs:
            write_trial(self._real, self._trial_id, params, attrs)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._trial.storage = self._real

    def __enter__(self) -> "BufferedWrites":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_trial(storage: BaseStorage, trial_id: int, params: list[Param],
                attrs: dict[str, Any]) -> None:
    """Write a running trial's ``params`` (name, internal value, distribution) and user ``attrs``
    in one transaction (RDB) or one append (journal); one by one on other storages."""
    if _CachedStorage is not None:
        if isinstance(storage, _CachedStorage) and isinstance(storage._backend, RDBStorage):
            _write_cached_rdb(storage, trial_id, params, attrs)
            return
        if isinstance(storage, RDBStorage):
            _write_rdb(storage, trial_id, params, attrs, {})
            return
        if isinstance(storage, JournalStorage):
            _write_journal(storage, trial_id, params, attrs)
            return
    for name, value, distribution in params:
        storage.set_trial_param(trial_id, name, value, distribution)
    for key, value in attrs.items():
        storage.set_trial_user_attr(trial_id, key, value)


def _write_cached_rdb(storage: Any, trial_id: int, params: list[Param],
                      attrs: dict[str, Any]) -> None:
    # As ``_CachedStorage.set_trial_param``: check against (and fill) its distribution cache.
    with storage._lock:
        if trial_id not in storage._trial_id_to_study_id_and_number:
            # A trial this process has not read yet (a Ray trial's first writes): the stored
            # distributions are what parameters are checked against.
            _write_rdb(storage._backend, trial_id, params, attrs, {})
            return
        study_id, _ = storage._trial_id_to_study_id_and_number[trial_id]
        known = storage._studies[study_id].param_distribution
        _write_rdb(storage._backend, trial_id, params, attrs, known)
        for name, _, distribution in params:
            known.setdefault(name, distribution)


def _write_rdb(storage: RDBStorage, trial_id: int, params: list[Param], attrs: dict[str, Any],
               known: dict[str, BaseDistribution]) -> None:
    """One transaction: the trial checked once, one insert of every parameter, one upsert of
    every attribute (Optuna's rules: a running trial, one distribution per name in a study)."""
    with _create_scoped_session(storage.scoped_session) as session:
        trial = rdb_models.TrialModel.find_or_raise_by_id(trial_id, session)
        storage.check_trial_is_updatable(trial_id, trial.state)
        rows = []
        for name, value, distribution in params:
            previous = known.get(name) or _stored_distribution(session, trial.study_id, name)
            if previous is not None:
                check_distribution_compatibility(previous, distribution)
            rows.append({"trial_id": trial_id, "param_name": name, "param_value": value,
                         "distribution_json": distribution_to_json(distribution)})
        if rows:
            session.execute(sqlalchemy.insert(rdb_models.TrialParamModel), rows)
        if attrs:
            _upsert_attrs(storage, session, trial_id, attrs)


def _stored_distribution(session: Any, study_id: int, name: str) -> BaseDistribution | None:
    record = (session.query(rdb_models.TrialParamModel)
              .join(rdb_models.TrialModel)
              .filter(rdb_models.TrialModel.study_id == study_id)
              .filter(rdb_models.TrialParamModel.param_name == name).first())
    return None if record is None else json_to_distribution(record.distribution_json)


def _upsert_attrs(storage: RDBStorage, session: Any, trial_id: int, attrs: dict[str, Any]) -> None:
    model = rdb_models.TrialUserAttributeModel
    rows = [{"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
            for key, value in attrs.items()]
    dialect = storage.engine.name
    if dialect == "sqlite" and sqlite3.sqlite_version_info >= (3, 24, 0):
        statement = sqlite_insert(model).values(rows)
        statement = statement.on_conflict_do_update(
            index_elements=[model.trial_id, model.key],
            set_={"value_json": statement.excluded.value_json})
    elif dialect == "postgresql":
        statement = postgresql_insert(model).values(rows)
        statement = statement.on_conflict_do_update(
            index_elements=[model.trial_id, model.key],
            set_={"value_json": statement.excluded.value_json})
    elif dialect == "mysql":
        statement = mysql_insert(model).values(rows)
        statement = statement.on_duplicate_key_update(value_json=statement.inserted.value_json)
    else:   # no upsert statement known here: Optuna's own per-row write, same transaction
        for key, value in attrs.items():
            storage._set_trial_attr_without_commit(session, model, trial_id, key, value)
        return
    session.execute(statement)


def _write_journal(storage: Any, trial_id: int, params: list[Param],
                   attrs: dict[str, Any]) -> None:
    with storage._thread_lock:
        worker = storage._replay_result.worker_id
        logs = [{"op_code": JournalOperation.SET_TRIAL_PARAM, "worker_id": worker,
                 "trial_id": trial_id, "param_name": name, "param_value_internal": value,
                 "distribution": distribution_to_json(distribution)}
                for name, value, distribution in params]
        logs += [{"op_code": JournalOperation.SET_TRIAL_USER_ATTR, "worker_id": worker,
                  "trial_id": trial_id, "user_attr": {key: value}} for key, value in attrs.items()]
        storage._backend.append_logs(logs)
        storage._sync_with_backend()


__all__ = ["BufferedWrites", "write_trial"]
