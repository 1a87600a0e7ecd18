package io.peft4j.cli;

import java.io.IOException;
import java.nio.file.FileSystemException;

/** Messages for the command line's own I/O errors: the cause in words, not the exception's class. */
final class Errors {
    private Errors() {}

    static String describe(IOException e) {
        if (e instanceof FileSystemException fs) {
            String reason = fs.getReason();
            String kind = switch (e.getClass().getSimpleName()) {
                case "AccessDeniedException" -> "permission denied";
                case "NoSuchFileException" -> "no such file or directory";
                case "NotDirectoryException" -> "not a directory";
                case "DirectoryNotEmptyException" -> "directory not empty";
                case "FileAlreadyExistsException" -> "already exists";
                default -> reason == null ? "file-system error" : reason.toLowerCase(java.util.Locale.ROOT);
            };
            return fs.getFile() + ": " + kind;
        }
        return e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
    }
}
