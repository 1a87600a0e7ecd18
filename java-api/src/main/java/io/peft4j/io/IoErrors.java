package io.peft4j.io;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonProcessingException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;
import java.util.Locale;

/**
 * One-line messages for I/O failures: "cannot OPERATION PATH: CAUSE", e.g. "cannot write
 * /out/adapter_model.safetensors: permission denied". java.nio's exceptions carry the file and
 * the reason separately and their own message is often just the path, which tells a user nothing.
 */
public final class IoErrors {
    private IoErrors() {}

    /**
     * An exception of the same java.nio type as {@code e} (so callers can still catch
     * NoSuchFileException and the like) whose message names the operation, the path and the cause.
     * An exception this class already described is returned as it is.
     *
     * @param operation what was being done: "read", "write", "create directory", "rename", "delete"
     */
    public static IOException describe(String operation, Path path, IOException e) {
        if (e instanceof Described) return e;
        String message = message(operation, path, e);
        IOException out = switch (e) {
            case AccessDeniedException x -> new DescribedAccessDenied(message);
            case NoSuchFileException x -> new DescribedNoSuchFile(message);
            case NotDirectoryException x -> new DescribedNotDirectory(message);
            case FileAlreadyExistsException x -> new DescribedAlreadyExists(message);
            case DirectoryNotEmptyException x -> new DescribedNotEmpty(message);
            case FileSystemException x -> new DescribedFileSystem(message);
            default -> new DescribedIo(message);
        };
        out.initCause(e);
        return out;
    }

    /** {@link #describe} as an unchecked exception, for APIs that do not declare IOException. */
    public static UncheckedIOException unchecked(String operation, Path path, IOException e) {
        IOException d = describe(operation, path, e);
        return new UncheckedIOException(d.getMessage(), d);
    }

    /** "cannot OPERATION PATH: CAUSE", naming the file at fault too when it is another one (a parent, a temporary file). */
    static String message(String operation, Path path, IOException e) {
        StringBuilder sb = new StringBuilder("cannot ").append(operation).append(' ').append(path).append(": ");
        if (e instanceof FileSystemException f && f.getFile() != null && !sameFile(Path.of(f.getFile()), path)) {
            sb.append(f.getFile()).append(": ");
        }
        return sb.append(cause(e)).toString();
    }

    private static boolean sameFile(Path a, Path b) {
        return a.toAbsolutePath().normalize().equals(b.toAbsolutePath().normalize());
    }

    /** The cause in words: "permission denied", "no such file or directory", "no space left on device", ... */
    public static String cause(IOException e) {
        String words = switch (e) {
            case AccessDeniedException x -> "permission denied";
            case NoSuchFileException x -> "no such file or directory";
            case NotDirectoryException x -> "not a directory";
            case DirectoryNotEmptyException x -> "directory not empty";
            case FileAlreadyExistsException x -> x.getFile() != null && !Files.isDirectory(Path.of(x.getFile()))
                    && Files.exists(Path.of(x.getFile())) ? "exists and is not a directory" : "already exists";
            case FileSystemException x -> x.getReason();
            default -> e.getMessage();
        };
        if (words == null || words.isBlank()) words = e.getClass().getSimpleName();
        words = words.strip().replace('\n', ' ');
        // The OS says "No space left on device"; mid-sentence it reads better in lower case.
        return words.length() > 1 && Character.isUpperCase(words.charAt(0)) && Character.isLowerCase(words.charAt(1))
                ? words.substring(0, 1).toLowerCase(Locale.ROOT) + words.substring(1) : words;
    }

    /**
     * Where a JSON text breaks and what the parser expected there, on one line: "at line 3, column
     * 10: Unexpected character (','): was expecting double-quote to start field name", without
     * Jackson's source excerpts and character codes.
     */
    public static String jsonSyntax(JsonProcessingException e) {
        JsonLocation loc = e.getLocation();
        String where = loc == null ? "" : "at line " + loc.getLineNr() + ", column " + loc.getColumnNr() + ": ";
        String what = String.valueOf(e.getOriginalMessage()).lines().findFirst().orElse("")
                .replaceAll(" \\(code -?\\d+\\)", "")
                .replaceAll(" \\(start marker at \\[Source.*$", "")
                .replaceAll(" at \\[Source.*$", "");
        return where + what.strip();
    }

    /** Marks exceptions whose message is already complete. */
    private interface Described {}

    private static final class DescribedIo extends IOException implements Described {
        DescribedIo(String m) { super(m); }
    }

    private static final class DescribedFileSystem extends FileSystemException implements Described {
        DescribedFileSystem(String m) { super(null, null, m); }
    }

    private static final class DescribedAccessDenied extends AccessDeniedException implements Described {
        DescribedAccessDenied(String m) { super(null, null, m); }
    }

    private static final class DescribedNoSuchFile extends NoSuchFileException implements Described {
        DescribedNoSuchFile(String m) { super(null, null, m); }
    }

    private static final class DescribedNotDirectory extends NotDirectoryException implements Described {
        DescribedNotDirectory(String m) { super(m); }
    }

    private static final class DescribedAlreadyExists extends FileAlreadyExistsException implements Described {
        DescribedAlreadyExists(String m) { super(null, null, m); }
    }

    private static final class DescribedNotEmpty extends DirectoryNotEmptyException implements Described {
        DescribedNotEmpty(String m) { super(m); }
    }
}
