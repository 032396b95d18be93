import BGSyncCore
