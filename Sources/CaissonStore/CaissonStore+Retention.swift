import CaissonCore

/// Staged package files and retention. Cut-off times are RFC 3339 strings compared by SQLite's
/// `julianday()`, so fractional seconds and offsets order correctly; a row whose time cannot be
/// parsed is kept.
extension CaissonStore {
    // MARK: - Staged packages

    /// Inserts or replaces the staged package with this id.
    public func recordStagedPackage(_ package: StagedPackage) throws {
        try ensureAlive("recording a staged package")
        let json = try encode(package, "staged package")
        try StoreErrors.wrap(databasePath, "recording a staged package") {
            try db.run("""
                INSERT INTO staged_packages (package_id, path, service_name, validation_attempt_id, staged_at, record)
                VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (package_id) DO UPDATE SET
                    path = excluded.path, service_name = excluded.service_name,
                    validation_attempt_id = excluded.validation_attempt_id,
                    staged_at = excluded.staged_at, record = excluded.record
                """,
                [.text(package.packageID), .text(package.path), .optional(package.serviceName),
                 .optional(package.validationAttemptID), .text(package.stagedAt), .text(json)])
        }
    }

    public func stagedPackage(_ packageID: String) throws -> StagedPackage? {
        try StoreErrors.wrap(databasePath, "reading a staged package") {
            try readOne(StagedPackage.self, kind: "staged package",
                        "SELECT package_id, record FROM staged_packages WHERE package_id = ?", [.text(packageID)])
        }
    }

    /// Staged packages, oldest first.
    public func stagedPackages() throws -> RecordList<StagedPackage> {
        try StoreErrors.wrap(databasePath, "reading staged packages") {
            try readList(StagedPackage.self, kind: "staged package",
                         "SELECT package_id, record FROM staged_packages ORDER BY row_id")
        }
    }

    /// Forgets one staged package; true if it was recorded.
    @discardableResult
    public func removeStagedPackage(_ packageID: String) throws -> Bool {
        try StoreErrors.wrap(databasePath, "removing a staged package") {
            try db.run("DELETE FROM staged_packages WHERE package_id = ?", [.text(packageID)]) > 0
        }
    }

    /// Deletes the rows of packages staged before `cutoff` and returns them (the caller deletes
    /// the files). A row whose JSON is damaged is returned from its typed columns.
    public func deleteStagedPackages(stagedBefore cutoff: String) throws -> [StagedPackage] {
        try checkTimestamp(cutoff)
        return try StoreErrors.wrap(databasePath, "deleting old staged packages") {
            try db.transaction {
                let rows = try db.query("""
                    SELECT package_id, path, service_name, validation_attempt_id, staged_at, record
                    FROM staged_packages WHERE julianday(staged_at) < julianday(?) ORDER BY row_id
                    """, [.text(cutoff)]) {
                    ($0.text(0), $0.text(1), $0.optionalText(2), $0.optionalText(3), $0.text(4), $0.blob(5))
                }
                var deleted: [StagedPackage] = []
                for (id, path, service, validation, stagedAt, json) in rows {
                    switch decode(StagedPackage.self, json) {
                    case .success(let package): deleted.append(package)
                    case .failure:
                        deleted.append(StagedPackage(packageID: id, path: path, serviceName: service,
                                                     validationAttemptID: validation, stagedAt: stagedAt))
                    }
                    try db.run("DELETE FROM staged_packages WHERE package_id = ?", [.text(id)])
                }
                return deleted
            }
        }
    }

    // MARK: - Validation records

    /// Deletes validation records that finished before `cutoff`, except those a candidate release
    /// still refers to (the provenance of what is or was installed). Returns how many were deleted.
    @discardableResult
    public func deleteValidations(finishedBefore cutoff: String) throws -> Int {
        try checkTimestamp(cutoff)
        return try StoreErrors.wrap(databasePath, "deleting old validation records") {
            try db.run("""
                DELETE FROM validations WHERE julianday(finished_at) < julianday(?)
                AND validation_attempt_id NOT IN
                    (SELECT validation_attempt_id FROM candidate_releases WHERE validation_attempt_id IS NOT NULL)
                """, [.text(cutoff)])
        }
    }

    /// Keeps the newest `count` validation records (plus any a candidate release refers to) and
    /// deletes the rest. Returns how many were deleted.
    @discardableResult
    public func deleteValidations(keepingNewest count: Int) throws -> Int {
        try StoreErrors.wrap(databasePath, "deleting old validation records") {
            try db.run("""
                DELETE FROM validations
                WHERE row_id NOT IN (SELECT row_id FROM validations ORDER BY row_id DESC LIMIT ?)
                AND validation_attempt_id NOT IN
                    (SELECT validation_attempt_id FROM candidate_releases WHERE validation_attempt_id IS NOT NULL)
                """, [.integer(Int64(max(0, count)))])
        }
    }

    private func checkTimestamp(_ value: String) throws {
        let parsed = try StoreErrors.wrap(databasePath, "checking a cut-off time") {
            try db.scalar("SELECT julianday(?)", [.text(value)])
        }
        if case .null = parsed {
            throw CaissonError("store.invalid_timestamp",
                               "the cut-off time \"\(value)\" is not an RFC 3339 timestamp "
                                   + "(e.g. 2026-03-16T18:30:00Z)")
        }
    }
}
